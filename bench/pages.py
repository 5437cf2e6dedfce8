"""Page benchmark: every server-rendered page, as each role, with 100,000 tickets.

The target (issue 4 item 6): **every server-rendered page under 200 ms with 100,000 tickets in
the database**. This script measures it, per database (a SQLite file — the embedded default —
and PostgreSQL + PostGIS):

1. builds a fresh database (SQLite in a temporary ``YIHAO_HOME``; PostgreSQL database
   ``yihao_bench_pages``, dropped and recreated) and migrates it;
2. seeds the tree and the tickets with ``bench/escalation.py``'s own helpers (a county, ten
   townships of ten villages, a worker per village, station staff per township, bulk Core
   inserts of the tickets with their open reply clocks — not the actions), then adds, set-based:
   a drawn grid per village with its worker, every ticket's grid and point, and a realistic mix
   of states (40 % closed, 10 % replied and waiting for review, 2 % waiting at a township's
   desk, the rest being handled); a deadline scan escalates the overdue ones (the board's
   items), and a few tickets go through the real API (accept, dispatch, return) so the
   returned tab and the ticket pages have real histories;
3. logs in through the login form as each role — a township station (about 10,000 tickets), a
   village contact (1,000), the county supervisor (all 100,000) and the province platform —
   and times each page in process through the Flask test client (WSGI, templates, database;
   no network): one warm-up, then ``--runs`` runs; the table shows the median and the
   slowest, and the statements each page sends.

    .venv/bin/python bench/pages.py                      # both databases, 100,000 tickets
    .venv/bin/python bench/pages.py --db sqlite --tickets 20000 --runs 3   # a quick look

Writes the raw numbers as JSON (``--json``, default ``bench/results/pages.json``);
``docs/performance.md`` has the table. Loopback only; sizes are capped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.escalation as esc_bench  # noqa: E402  (its tree, ticket insert and PG helpers)

DEFAULT_JSON = ROOT / "bench" / "results" / "pages.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/yihao_bench_pages"
MAX_TICKETS = 1_000_000
TARGET_MS = 200.0
PASSWORD = "bench-password"
#: The lattice the villages' grids are laid on (inside 和平区's longitudes, roughly).
ORIGIN = (123.30, 41.70)
CELL = 0.004
log = esc_bench.log


# ---------------------------------------------------------------- the data


def add_grids(tree: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """A square grid per village with its worker as the on-duty member; {village id: centre}."""
    import sqlalchemy as sa
    from shapely.geometry import box

    from grids.geometry import geometry_hash, normalise
    from grids.models import GridMember
    from grids.operations import do_create_grids
    from hierarchy.models import Unit
    from server.core.db import db

    units = {u.id: u for u in db.session.execute(
        sa.select(Unit).where(Unit.id.in_([v[0] for v in tree["villages"]]))).scalars()}
    items = []
    centres: dict[int, tuple[float, float]] = {}
    for i, (village_id, _path, _worker) in enumerate(tree["villages"]):
        x0, y0 = ORIGIN[0] + (i % 10) * CELL, ORIGIN[1] + (i // 10) * CELL
        geom = normalise(box(x0, y0, x0 + CELL, y0 + CELL))
        unit = units[village_id]
        items.append((f"G-{unit.code}", f"{unit.name}网格", unit, geom, geometry_hash(geom)))
        centres[village_id] = (x0 + CELL / 2, y0 + CELL / 2)
    ids = do_create_grids(None, items, source="bench")
    db.session.execute(sa.insert(GridMember), [
        {"grid_id": ids[f"G-{units[v].code}"], "user_id": w, "position": 0, "on_duty": True}
        for v, _p, w in tree["villages"]])
    db.session.commit()
    return centres


def shape_tickets(tree: dict[str, Any]) -> dict[str, int]:
    """Set-based: each ticket's grid and point, and a realistic mix of states."""
    import sqlalchemy as sa

    from server.core.db import db, utcnow

    now = utcnow()
    pg = db.engine.dialect.name == "postgresql"
    mod = "%"
    statements = [
        # The grid of the ticket's village, and a point inside it (spread by the id).
        """UPDATE tickets SET grid_id = (SELECT g.id FROM grids g WHERE g.unit_id = tickets.unit_id),
               lng = (SELECT g.min_lng FROM grids g WHERE g.unit_id = tickets.unit_id)
                     + ((id * 37) % 100) * :step,
               lat = (SELECT g.min_lat FROM grids g WHERE g.unit_id = tickets.unit_id)
                     + ((id * 53) % 100) * :step,
               location_crs = 'wgs84'""",
        f"UPDATE tickets SET status = 'closed', closed_at = :now, replied_at = :now "
        f"WHERE id {mod} 10 IN (2, 3, 4, 5)",
        f"UPDATE tickets SET status = 'replied', replied_at = :now, reply_result = '已处理完毕', "
        f"reply_resolution = 'resolved' WHERE id {mod} 10 = 1",
        # Waiting at the township's desk: held by the village's parent, nobody assigned.
        f"""UPDATE tickets SET status = 'assigned', assignee_id = NULL,
               unit_id = (SELECT u.parent_id FROM units u WHERE u.id = tickets.unit_id)
            WHERE id {mod} 50 = 7""",
        # Closed tickets' clocks are stopped.
        "UPDATE clocks SET stopped_at = :now, stop_reason = 'closed' WHERE ticket_id IN "
        "(SELECT id FROM tickets WHERE status = 'closed')",
    ]
    for sql in statements:
        db.session.execute(sa.text(sql), {"now": now if pg else now.replace(tzinfo=None)
                                          .strftime("%Y-%m-%d %H:%M:%S.%f"),
                                          "step": CELL / 100})
    db.session.commit()
    counts = dict(db.session.execute(sa.text(
        "SELECT status, count(*) FROM tickets GROUP BY status")).all())
    if pg:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
    return {str(k): int(v) for k, v in counts.items()}


def real_tickets(app: Any, n: int) -> dict[str, list[str]]:
    """``n`` tickets through the real API into township 1's first village, half of them
    returned by its worker: the returned tab and the ticket pages get real histories."""
    import sqlalchemy as sa

    from hierarchy.models import User
    from hierarchy.operations import do_create_token
    from server.core.db import db

    with app.app_context():
        users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
        tokens = {name: do_create_token(None, users[name], "bench")
                  for name in ("hotline", "county", "station-0", "w-210102001001")}
        db.session.commit()
    client = app.test_client()

    def call(who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = client.post(f"/api/v1{path}", json=body,
                           headers={"Authorization": f"Bearer {tokens[who]}"})
        assert resp.status_code in (200, 201), (path, resp.get_json())
        return resp.get_json()  # type: ignore[no-any-return]

    out: dict[str, list[str]] = {"returned": [], "assigned": []}
    x, y = ORIGIN[0] + CELL / 2, ORIGIN[1] + CELL / 2
    for i in range(n):
        number = call("hotline", "/tickets", {
            "source": "hotline", "type": "complaint", "title": f"路灯不亮 {i}",
            "content": "小区门口路灯连续一周不亮。", "location": {"lng": x, "lat": y},
            "address": "街道1社区1-1", "external_id": f"bench-{i}"})["number"]
        call("hotline", f"/tickets/{number}/dispatch", {"unit": "210102"})
        call("county", f"/tickets/{number}/dispatch", {"unit": "210102001"})
        call("station-0", f"/tickets/{number}/dispatch", {"grid": "G-210102001001"})
        if i % 2 == 0:
            call("w-210102001001", f"/tickets/{number}/return", {"reason": "不属于本网格"})
            out["returned"].append(number)
        else:
            out["assigned"].append(number)
    return out


def seed(app: Any, n: int, real: int) -> dict[str, Any]:
    """The whole data set; returns what the timing needs."""
    import sqlalchemy as sa

    from hierarchy.models import Level, Role, Unit
    from hierarchy.operations import do_create_user
    from server.cli import run_migrations
    from server.core.db import db, utcnow
    from server.jobs import run_scan

    sizes: dict[str, Any] = {}
    with app.app_context():
        t0 = time.perf_counter()
        run_migrations()
        tree = esc_bench.make_tree(10)
        village = db.session.execute(sa.select(Unit).where(Unit.code == "210102001001")
                                     ).scalar_one()
        do_create_user(None, username="contact-0", display_name="contact-0", role=Role.contact,
                       unit=village, password=PASSWORD)
        db.session.commit()
        add_grids(tree)
        log(f"tree and grids in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        # The clocks' times are relative to the module's NOW: make it now, so the board sees
        # 0.5 % of the open tickets due soon or overdue, as on an ordinary day.
        esc_bench.NOW = utcnow().replace(microsecond=0)
        sizes["inserted"] = esc_bench.insert_tickets(tree, n, 200, 0.5)
        sizes["states"] = shape_tickets(tree)
        sizes["insert_seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{n} tickets inserted and shaped in {sizes['insert_seconds']}s: {sizes['states']}")
        t0 = time.perf_counter()
        report = run_scan(esc_bench.NOW + timedelta(minutes=1), time_budget=600)
        sizes["escalated"] = report.escalated
        log(f"scan: {report.escalated} escalations in {time.perf_counter() - t0:.1f}s")
        db.session.remove()
    t0 = time.perf_counter()
    sizes["real"] = real_tickets(app, real)
    log(f"{real} tickets through the API in {time.perf_counter() - t0:.1f}s")
    with app.app_context():
        replied = db.session.execute(sa.text(
            "SELECT number FROM tickets WHERE status = 'replied' AND unit_id IN (SELECT id FROM "
            "units WHERE path LIKE (SELECT path FROM units WHERE code = '210102001') || '%') "
            "ORDER BY id DESC LIMIT 1")).scalar_one()
        middle = db.session.execute(sa.text(
            "SELECT id FROM tickets ORDER BY id LIMIT 1 OFFSET :k"), {"k": n // 2}).scalar_one()
        levels = dict(db.session.execute(sa.select(Unit.code, Unit.level)).all())
        db.session.remove()
    sizes["replied_example"] = replied
    sizes["middle_id"] = middle
    sizes["townships"] = sum(1 for lv in levels.values() if lv == Level.township)
    return sizes


# ---------------------------------------------------------------- timing


def pages_for(role: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, path) of every server-rendered page this role opens, and the map's JSON."""
    returned = data["real"]["returned"][0]
    assigned = data["real"]["assigned"][0]
    replied = data["replied_example"]
    common = [
        ("ticket list", "/"),
        ("ticket list, page 2 (keyset)", f"/?before={data['middle_id']}"),
        ("ticket list, replied", "/?status=replied"),
        ("desk: to dispatch", "/station"),
        ("desk: returned", "/station?tab=returned"),
        ("desk: to review", "/station?tab=review"),
        ("desk: handled below", "/station?tab=below"),
        ("desk: below, page 2", f"/station?tab=below&before={data['middle_id']}"),
        ("board", "/board"),
        ("board, one township", "/board?township=210102001"),
        ("map page", "/map"),
        ("map: grid load (JSON)", "/api/v1/map/load"),
        ("map: ticket points (JSON)", "/api/v1/map/tickets?limit=1000"),
        ("map: grids (JSON)", "/api/v1/grids"),
    ]
    if role in ("station", "county"):
        common += [
            ("workbench: returned ticket", f"/station/tickets/{returned}"),
            ("workbench: assigned ticket", f"/station/tickets/{assigned}"),
            ("workbench: review", f"/station/tickets/{replied}"),
            ("ticket page", f"/tickets/{returned}"),
        ]
    if role == "county":
        common.append(("deadline report", "/board/report"))
    return common


ROLES = {"station": "station-0", "contact": "contact-0", "county": "county",
         "platform": "hotline"}


def time_pages(app: Any, data: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    from sqlalchemy import event

    from server.core.db import db

    with app.app_context():
        engine = db.engine
    rows = []
    for role, username in ROLES.items():
        client = app.test_client()
        resp = client.post("/login", data={"username": username, "password": PASSWORD})
        assert resp.status_code == 302, (username, resp.status_code)
        for label, path in pages_for(role, data):
            statements: list[str] = []

            def count(conn: Any, cursor: Any, statement: str, *args: Any,
                      _seen: list[str] = statements) -> None:
                _seen.append(statement)

            resp = client.get(path)  # warm-up: compiled statements, caches, boundaries
            status = resp.status_code
            times = []
            for i in range(runs):
                if i == runs - 1:
                    event.listen(engine, "before_cursor_execute", count)
                t0 = time.perf_counter()
                resp = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                if i == runs - 1:
                    event.remove(engine, "before_cursor_execute", count)
                status = resp.status_code
            rows.append({"role": role, "page": label, "path": path, "status": status,
                         "median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "statements": len(statements),
                         "bytes": len(resp.data)})
            log(f"  {role:9s} {label:32s} {statistics.median(times):7.1f} ms "
                f"{len(statements):3d} stmts  {status}")
    return rows


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from server.app import create_app
    from server.core.db import db

    home = Path(tempfile.mkdtemp(prefix=f"yihao-bench-pages-{kind}-"))
    if kind == "postgres":
        esc_bench.recreate_pg(args.pg_url)
        url = args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        url = f"sqlite:///{home / 'yihao.sqlite3'}"
    os.environ.update({"YIHAO_HOME": str(home), "DATABASE_URL": url})
    app = create_app(YIHAO_JOBS_ENABLED=False)
    log(f"[{kind}] seeding {args.tickets} tickets")
    data = seed(app, args.tickets, args.real)
    rows = time_pages(app, data, args.runs)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    slowest = max(rows, key=lambda r: r["median_ms"])
    return {"db": kind, "data": {k: v for k, v in data.items() if k != "real"}, "pages": rows,
            "slowest": {"page": slowest["page"], "role": slowest["role"],
                        "median_ms": slowest["median_ms"]},
            "all_under_target": all(r["median_ms"] < TARGET_MS and r["status"] == 200
                                    for r in rows)}


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per (role, page), one column pair per database."""
    kinds = [r["db"] for r in results]
    head = "| role | page | " + " | ".join(f"{k} median ms | {k} max ms | {k} stmts"
                                            for k in kinds) + " |"
    sep = "|---|---|" + "---:|---:|---:|" * len(kinds)
    lines = [head, sep]
    by_db = [{(p["role"], p["page"]): p for p in r["pages"]} for r in results]
    for role, page in [(p["role"], p["page"]) for p in results[0]["pages"]]:
        cells = []
        for pages in by_db:
            p = pages.get((role, page))
            if p is None:
                cells.append("— | — | —")
                continue
            mark = "" if p["median_ms"] < TARGET_MS and p["status"] == 200 else " ⚠"
            cells.append(f"{p['median_ms']}{mark} | {p['max_ms']} | {p['statements']}")
        lines.append(f"| {role} | {page} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per page (median)")
    parser.add_argument("--real", type=int, default=20,
                        help="tickets made through the API (returned and assigned)")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if not 1000 <= args.tickets <= MAX_TICKETS:
        parser.error(f"--tickets must be between 1000 and {MAX_TICKETS}")
    if not 1 <= args.runs <= 50 or not 2 <= args.real <= 200:
        parser.error("--runs 1–50, --real 2–200")
    host = args.pg_url.split("@")[-1].split("/")[0].split(":")[0]
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--pg-url must be on this machine (loopback)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [bench_database(kind, args) for kind in kinds]
    print(table(results))
    for r in results:
        print(f"{r['db']}: slowest {r['slowest']['page']} as {r['slowest']['role']} "
              f"{r['slowest']['median_ms']} ms; all under {TARGET_MS:.0f} ms: "
              f"{r['all_under_target']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "tickets": args.tickets,
                                     "runs": args.runs, "results": results},
                                    ensure_ascii=False, indent=2, default=str))
    print(f"raw numbers: {args.json}")
    return 0 if all(r["all_under_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
