"""Escalation benchmark: the deadline scan over a million open tickets, 1 % of them due.

What it does, per database (a SQLite file — the embedded default — and PostgreSQL):

1. builds a fresh database (SQLite in a temporary ``YIHAO_HOME``; PostgreSQL database
   ``yihao_bench_esc``, dropped and recreated), migrates it (which seeds the calendar and the
   default rules) and creates a small tree: a county, ``--townships`` townships, ten villages
   each, one grid worker per village and station staff per township;
2. inserts ``--tickets`` open tickets, each with its open reply clock, set-based
   (``generate_series`` on PostgreSQL, then ``VACUUM ANALYZE`` as autovacuum would and a
   ``CHECKPOINT``, so the setup's own checkpoint is not timed with the scan;
   ``executemany`` on SQLite, then ``ANALYZE``): 1 % of the clocks are due
   at the scan instant (``--due-share``), split between due-soon reminders and overdue
   escalations (``--overdue``), the rest due days later;
3. times, counting SQL statements:

   - *empty scan*: a scan when nothing is due — what every minute costs with 1 M open;
   - *find*: the two index range reads that list what is due;
   - *due-soon scan*: the set-based reminders (the sweep of due-soon points since its mark,
     a minute before: fired rows and in-app notices) and the per-person digests (outbound
     SMS messages in the outbox) for all due-soon clocks;
   - *escalation scan*: the overdue clocks, each under its ticket's row lock through
     ``check_escalate`` / ``do_escalate`` (ticket event, board item, notices);
   - *recompute*: a rule change recomputing ``--recompute`` open clocks (set-based).

The scan instant is frozen (Wednesday 12 March 2025, 10:00 Shanghai: working hours, so the
digests go out in the same scan). Loopback only; sizes are capped.

    .venv/bin/python bench/escalation.py --db both
    .venv/bin/python bench/escalation.py --db postgres --recompute 1000 --runs 5   # medians
    .venv/bin/python bench/escalation.py --db sqlite --tickets 100000   # a quick look

``--runs N`` repeats it all N times, each on a fresh database; the table gives every timed
figure as the median of the runs, then each run. Writes the raw numbers and medians as JSON
(``--json``, default ``bench/results/escalation.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_JSON = ROOT / "bench" / "results" / "escalation.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/yihao_bench_esc"
MAX_TICKETS = 2_000_000
NOW = datetime(2025, 3, 12, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def recreate_pg(url: str) -> None:
    import sqlalchemy as sa

    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    base, name = url.rsplit("/", 1)
    admin = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


@contextmanager
def counting(engine: Any) -> Iterator[list[str]]:
    """Statements sent to the database inside the block (an executemany counts once)."""
    from sqlalchemy import event

    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


# ---------------------------------------------------------------- the data


def make_tree(townships: int) -> dict[str, Any]:
    import hierarchy.models
    from hierarchy.models import Level, Role
    from hierarchy.operations import do_create_unit, do_create_user
    from server.core.db import db

    hierarchy.models.PASSWORD_METHOD = "pbkdf2:sha256:1000"  # bench accounts only
    province = do_create_unit(None, code="210000", name="辽宁省", level=Level.province,
                              parent=None)
    city = do_create_unit(None, code="210100", name="沈阳市", level=Level.city, parent=province)
    county = do_create_unit(None, code="210102", name="和平区", level=Level.county, parent=city)
    hotline = do_create_user(None, username="hotline", display_name="hotline",
                             role=Role.platform, unit=province, password="bench-password")
    do_create_user(None, username="county", display_name="county", role=Role.supervisor,
                   unit=county, password="bench-password")
    villages: list[tuple[int, str, int]] = []
    for t in range(townships):
        town = do_create_unit(None, code=f"210102{t + 1:03d}", name=f"街道{t + 1}",
                              level=Level.township, parent=county)
        do_create_user(None, username=f"station-{t}", display_name=f"station-{t}",
                       role=Role.station, unit=town, password="bench-password",
                       phone="13800000000")
        for v in range(10):
            village = do_create_unit(None, code=f"{town.code}{v + 1:03d}",
                                     name=f"社区{t + 1}-{v + 1}", level=Level.village,
                                     parent=town)
            worker = do_create_user(None, username=f"w-{village.code}",
                                    display_name=f"w-{village.code}", role=Role.grid_worker,
                                    unit=village, password="bench-password",
                                    phone="13900000000")
            db.session.flush()
            villages.append((village.id, village.path, worker.id))
    db.session.commit()
    return {"province": province.id, "hotline": hotline.id, "villages": villages}


def insert_tickets(tree: dict[str, Any], n: int, due_every: int, overdue_share: float) -> dict[
        str, int]:
    """``n`` open tickets and their reply clocks; every ``due_every``-th clock is due."""
    import sqlalchemy as sa

    from server.core.db import db

    villages = tree["villages"]
    soon_every = due_every
    overdue_mod = max(1, round(1 / overdue_share)) if overdue_share else 0
    if db.engine.dialect.name == "postgresql":
        ids = "ARRAY[" + ",".join(str(v[0]) for v in villages) + "]"
        paths = "ARRAY[" + ",".join(f"'{v[1]}'" for v in villages) + "]::text[]"
        workers = "ARRAY[" + ",".join(str(v[2]) for v in villages) + "]"
        k = len(villages)
        # Spread the due clocks over the villages too (g alone would put them all in one).
        pick = f"1 + (g / {soon_every} + g) % {k}"
        db.session.execute(sa.text(f"""
            INSERT INTO tickets (id, number, source, type, title, content, urgency, status,
                unit_id, assignee_id, accepting_unit_id, created_by_id, reporter_anonymous,
                accepted_at, response_due, handling_due, deadline_provisional, extension_count,
                urge_count, reopen_count, version, updated_at)
            SELECT g, 'B' || lpad(g::text, 10, '0'), 'hotline', 'complaint', '路灯不亮',
                '小区门口路灯连续一周不亮。', 'normal', 'in_progress', ({ids})[{pick}],
                ({workers})[{pick}], :province, :hotline, true, :acc, :acc, :due, false,
                0, 0, 0, 1, :acc
            FROM generate_series(1, :n) AS g"""),
            {"n": n, "province": tree["province"], "hotline": tree["hotline"],
             "acc": NOW - timedelta(days=1), "due": NOW + timedelta(days=4)})
        db.session.execute(sa.text("SELECT setval('tickets_id_seq', :n)"), {"n": n})
        overdue_case = (f"g % {soon_every} = 0 AND (g / {soon_every}) % {overdue_mod} = 0"
                        if overdue_mod else "false")
        db.session.execute(sa.text(f"""
            INSERT INTO clocks (ticket_id, ticket_number, cycle, kind, seq, rule_code,
                calendar_version,
                ticket_type, category_code, urgency, level, scope_path, unit_id, unit_path,
                assignee_id, started_at, due_at, due_soon_at, extended_days, suspended_seconds,
                excused, provisional, step, next_fire_at)
            SELECT g, 'B' || lpad(g::text, 10, '0'), 0, 'reply', 1, 'default.reply', 1,
                'complaint', NULL, 'normal',
                'village', ({paths})[{pick}], ({ids})[{pick}],
                ({paths})[{pick}], ({workers})[{pick}],
                CASE WHEN {overdue_case} THEN :o_start
                     WHEN g % {soon_every} = 0 THEN :s_start ELSE :n_start END,
                CASE WHEN {overdue_case} THEN :o_due
                     WHEN g % {soon_every} = 0 THEN :s_due ELSE :n_due END,
                CASE WHEN {overdue_case} THEN :o_soon
                     WHEN g % {soon_every} = 0 THEN :s_soon ELSE :n_soon END,
                0, 0, false, false,
                CASE WHEN {overdue_case} THEN 1 ELSE 0 END,
                CASE WHEN {overdue_case} THEN :o_due
                     WHEN g % {soon_every} = 0 THEN :s_due ELSE :n_due END
            FROM generate_series(1, :n) AS g"""), {"n": n, **_times()})
        db.session.commit()
        # What autovacuum does to a live table: hint bits set, statistics fresh.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE tickets"))
            conn.execute(sa.text("VACUUM ANALYZE clocks"))
            # The million rows just written (≈ 1 GB of WAL) set off a checkpoint that would
            # otherwise run during the scan and be timed with it, more or less of it from one
            # run to the next. Done now, the scan starts right after a checkpoint: every page
            # it changes is written whole to the WAL, the worst case, the same each run.
            conn.execute(sa.text("CHECKPOINT"))
    else:
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            t = _times(sqlite=True)
            chunk = 50_000
            for lo in range(1, n + 1, chunk):
                hi = min(n, lo + chunk - 1)
                rows = []
                clocks = []
                for g in range(lo, hi + 1):
                    vid, vpath, wid = villages[(g // soon_every + g) % len(villages)]
                    rows.append((g, f"B{g:010d}", vid, wid, tree["province"], tree["hotline"],
                                 t["acc"], t["acc"], t["due"], t["acc"]))
                    due = g % soon_every == 0
                    over = due and overdue_mod and (g // soon_every) % overdue_mod == 0
                    p = "o" if over else ("s" if due else "n")
                    clocks.append((g, f"B{g:010d}", vpath, vid, vpath, wid, t[f"{p}_start"], t[f"{p}_due"],
                                   t[f"{p}_soon"], 1 if over else 0, t[f"{p}_due"]))
                cur.executemany(
                    "INSERT INTO tickets (id, number, source, type, title, content, urgency, "
                    "status, unit_id, assignee_id, accepting_unit_id, created_by_id, "
                    "reporter_anonymous, accepted_at, response_due, handling_due, "
                    "deadline_provisional, extension_count, urge_count, reopen_count, version, "
                    "updated_at) VALUES (?, ?, 'hotline', 'complaint', '路灯不亮', "
                    "'小区门口路灯连续一周不亮。', 'normal', 'in_progress', ?, ?, ?, ?, 1, ?, ?, "
                    "?, 0, 0, 0, 0, 1, ?)", rows)
                cur.executemany(
                    "INSERT INTO clocks (ticket_id, ticket_number, cycle, kind, seq, rule_code, "
                    "calendar_version, ticket_type, category_code, urgency, level, scope_path, "
                    "unit_id, unit_path, assignee_id, started_at, due_at, due_soon_at, "
                    "extended_days, suspended_seconds, excused, provisional, step, next_fire_at)"
                    " VALUES (?, ?, 0, 'reply', 1, 'default.reply', 1, 'complaint', NULL, "
                    "'normal', 'village', ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?)", clocks)
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    due = n // soon_every
    overdue = sum(1 for g in range(soon_every, n + 1, soon_every)
                  if overdue_mod and (g // soon_every) % overdue_mod == 0)
    return {"tickets": n, "due": due, "due_soon": due - overdue, "overdue": overdue}


def _times(sqlite: bool = False) -> dict[str, Any]:
    values = {
        "acc": NOW - timedelta(days=1), "due": NOW + timedelta(days=4),
        # not due: reminders in three days (left to the due-soon sweep, as the clocks set
        # them: their own next firing time is the deadline)
        "n_start": NOW - timedelta(days=1), "n_due": NOW + timedelta(days=4),
        "n_soon": NOW + timedelta(days=3),
        # due soon: the reminder point passed since the last scan, a minute ago
        "s_start": NOW - timedelta(days=4), "s_due": NOW + timedelta(hours=20),
        "s_soon": NOW - timedelta(seconds=30),
        # overdue: the deadline passed an hour ago, the reminder went long before
        "o_start": NOW - timedelta(days=6), "o_due": NOW - timedelta(hours=1),
        "o_soon": NOW - timedelta(days=1),
    }
    if sqlite:  # the text form SQLAlchemy's SQLite DateTime stores (naive UTC)
        return {k: f"{v.astimezone(UTC).replace(tzinfo=None):%Y-%m-%d %H:%M:%S.%f}"
                for k, v in values.items()}
    return values


def set_sweep_mark(at: datetime) -> None:
    """Put the due-soon sweep's mark at ``at``, as the scan a minute before would have."""
    import sqlalchemy as sa

    from escalation.models import ScanMark
    from escalation.scan import DUE_SOON_MARK
    from server.core.db import db

    db.session.execute(sa.delete(ScanMark))
    db.session.add(ScanMark(name=DUE_SOON_MARK, through_at=at, through_id=2**53, updated_at=at))
    db.session.commit()


# ---------------------------------------------------------------- the measurements


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    import sqlalchemy as sa

    from escalation import operations as esc_ops
    from escalation import scan as esc_scan
    from escalation.schemas import RuleBody
    from hierarchy.models import User
    from server.app import create_app
    from server.cli import run_migrations
    from server.core.db import db
    from server.jobs import run_scan

    home = Path(tempfile.mkdtemp(prefix=f"yihao-bench-esc-{kind}-"))
    if kind == "postgres":
        recreate_pg(args.pg_url)
        url = args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        url = f"sqlite:///{home / 'yihao.sqlite3'}"
    os.environ.update({"YIHAO_HOME": str(home), "DATABASE_URL": url})
    app = create_app(YIHAO_JOBS_ENABLED=False)
    result: dict[str, Any] = {"db": kind}
    with app.app_context():
        t0 = time.perf_counter()
        run_migrations()
        tree = make_tree(args.townships)
        log(f"[{kind}] migrated, {len(tree['villages'])} villages, "
            f"{time.perf_counter() - t0:.1f}s")
        engine = db.engine

        # Recompute first, on the first --recompute tickets alone.
        t0 = time.perf_counter()
        sizes = insert_tickets(tree, args.recompute, 10**9, 0)
        log(f"[{kind}] {sizes['tickets']} tickets for the recompute in "
            f"{time.perf_counter() - t0:.1f}s")
        admin = db.session.execute(sa.select(User).where(User.username == "hotline")).scalar_one()
        admin.role = "admin"
        db.session.commit()
        body = RuleBody(code="default.reply", name="4个工作日内办结反馈", clock="reply",
                        amount=4, unit="working_days")
        with counting(engine) as statements:
            t0 = time.perf_counter()
            checked = esc_ops.check_save_rule(admin, body)
            _row, report = esc_ops.do_save_rule(checked, now=NOW)
            db.session.commit()
            seconds = time.perf_counter() - t0
        result["recompute"] = {"clocks": report.examined, "changed": report.changed,
                               "seconds": round(seconds, 2), "queries": len(statements)}
        log(f"[{kind}] recompute {report.changed} clocks: {seconds:.1f}s, "
            f"{len(statements)} statements")
        if kind == "postgres":
            # Setup, not measured. With the foreign-key triggers on, each deleted ticket is
            # checked against ``tickets.duplicate_of_id``, which has no index: a sequential
            # scan per row, about ten minutes for the 100,000. Nothing else refers to these
            # tickets (their clocks go first), so this transaction skips the triggers.
            db.session.execute(sa.text("SET LOCAL session_replication_role = replica"))
        db.session.execute(sa.text("DELETE FROM clocks"))
        db.session.execute(sa.text("DELETE FROM tickets"))
        db.session.commit()

        t0 = time.perf_counter()
        sizes = insert_tickets(tree, args.tickets, round(1 / args.due_share), args.overdue)
        result["data"] = sizes | {"insert_seconds": round(time.perf_counter() - t0, 1)}
        log(f"[{kind}] inserted {sizes} in {time.perf_counter() - t0:.1f}s")

        empty_now = NOW - timedelta(days=2)  # nothing due yet
        set_sweep_mark(empty_now - timedelta(minutes=1))  # the last scan, a minute before
        runs = []
        for _ in range(3):  # the first also pays for compiling the statements, once a process
            with counting(engine) as statements:
                t0 = time.perf_counter()
                empty = run_scan(empty_now)
                runs.append(time.perf_counter() - t0)
        result["empty_scan"] = {"seconds": round(min(runs), 4), "first": round(runs[0], 4),
                                "queries": len(statements), "report": empty.as_dict()}
        log(f"[{kind}] empty scan {min(runs) * 1000:.1f} ms (first {runs[0] * 1000:.1f} ms), "
            f"{len(statements)} statements")

        # Scans ran every minute since, and found nothing new: the sweep's mark is where the
        # last of them left it, a minute before the scan measured below.
        set_sweep_mark(NOW - timedelta(minutes=1))
        with counting(engine) as statements:
            t0 = time.perf_counter()
            listed = len(esc_scan.due_rungs(NOW, limit=500))
            db.session.rollback()
            seconds = time.perf_counter() - t0
        result["find"] = {"seconds": round(seconds, 4), "queries": len(statements),
                          "listed": listed}
        if kind == "postgres":
            plan = db.session.execute(sa.text(
                "EXPLAIN SELECT id FROM clocks WHERE stopped_at IS NULL AND next_fire_at IS "
                "NOT NULL AND next_fire_at < :now ORDER BY next_fire_at LIMIT 500"),
                {"now": NOW}).scalars().all()
            result["find"]["plan"] = plan
            db.session.rollback()

        with counting(engine) as statements:
            t0 = time.perf_counter()
            fired = 0
            while True:  # clocks whose own firing time is their due-soon point
                handled = esc_scan.fire_due_soon(NOW, limit=args.batch)
                db.session.commit()
                fired += handled
                if handled < args.batch:
                    break
            while True:  # the sweep of the due-soon points since its mark
                swept = esc_scan.sweep_due_soon(NOW, limit=args.batch)
                db.session.commit()
                fired += swept.handled
                if swept.read < args.batch:
                    break
            from escalation import notify

            digests = notify.flush(NOW, limit=max(5000, sizes["due"] * 2))
            db.session.commit()
            seconds = time.perf_counter() - t0
        result["due_soon_scan"] = {"reminders": fired, "digests": digests,
                                   "seconds": round(seconds, 3), "queries": len(statements)}
        log(f"[{kind}] due-soon scan: {fired} reminders, {digests} digests in "
            f"{seconds:.2f}s, {len(statements)} statements")

        with counting(engine) as statements:
            t0 = time.perf_counter()
            full = run_scan(NOW, reminder_batch=args.batch, time_budget=args.budget)
            seconds = time.perf_counter() - t0
        per = seconds / full.escalated if full.escalated else None
        result["escalation_scan"] = {
            "escalated": full.escalated, "complete": full.complete,
            "seconds": round(seconds, 3), "queries": len(statements),
            "ms_per_escalation": round(per * 1000, 2) if per else None,
            "queries_per_escalation": round(len(statements) / full.escalated, 1)
            if full.escalated else None, "report": full.as_dict()}
        log(f"[{kind}] escalation scan: {full.escalated} escalations in {seconds:.2f}s, "
            f"{len(statements)} statements")
        if os.environ.get("YIHAO_BENCH_SQL"):  # which statements, most frequent first
            shapes = Counter(" ".join(st.split())[:70] for st in statements)
            for shape, n in shapes.most_common(12):
                log(f"    {n:6d}  {shape}")
        db.session.remove()
        engine.dispose()
    shutil.rmtree(home, ignore_errors=True)  # a million-ticket SQLite file a run
    return result


def _spread(values: list[float], fmt: str, unit: str) -> str:
    """The median, then every run when there were several: these machines are noisy, so a
    figure is quoted as the median of runs and the runs show how far apart they were."""
    text = f"{format(statistics.median(values), fmt)} {unit}"
    if len(values) > 1:
        text += " (" + " / ".join(format(v, fmt) for v in values) + ")"
    return text


def whole_scan(run: dict[str, Any]) -> float:
    """The whole 1 % scan: the due-soon reminders and digests, then the escalations."""
    return run["due_soon_scan"]["seconds"] + run["escalation_scan"]["seconds"]


def table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """One column per database; a timed row gives the median of the runs, then each run."""
    kinds = list(runs)
    lines = [
        "| | " + " | ".join(f"{k} ({len(runs[k])} run{'s' * (len(runs[k]) > 1)})"
                             for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]

    def row(label: str, cell: Callable[[list[dict[str, Any]]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(runs[k]) for k in kinds) + " |")

    def seconds(rs: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
        return [r[key]["seconds"] * scale for r in rs]

    row("open tickets (due)",
        lambda rs: f"{rs[0]['data']['tickets']:,} ({rs[0]['data']['due']:,})")
    row("empty scan (nothing due)", lambda rs: _spread(
        seconds(rs, "empty_scan", 1000), ".1f", "ms") + f", {rs[0]['empty_scan']['queries']} "
        "queries")
    row("find what is due (500)", lambda rs: _spread(
        seconds(rs, "find", 1000), ".1f", "ms") + f", {rs[0]['find']['queries']} query")
    row("due-soon scan", lambda rs: (
        f"{rs[0]['due_soon_scan']['reminders']:,} reminders + "
        f"{rs[0]['due_soon_scan']['digests']} digests: "
        + _spread(seconds(rs, "due_soon_scan"), ".2f", "s")
        + f", {rs[0]['due_soon_scan']['queries']} queries"))
    row("escalation scan", lambda rs: (
        f"{rs[0]['escalation_scan']['escalated']:,} escalations: "
        + _spread(seconds(rs, "escalation_scan"), ".2f", "s")
        + f", {rs[0]['escalation_scan']['queries']} queries"))
    row("**the whole scan** (due soon + escalations)",
        lambda rs: "**" + _spread([whole_scan(r) for r in rs], ".2f", "s") + "**")
    row("recompute after a rule change", lambda rs: (
        f"{rs[0]['recompute']['changed']:,} clocks: "
        + _spread(seconds(rs, "recompute"), ".1f", "s")
        + f", {rs[0]['recompute']['queries']} queries"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--pg-url", default=os.environ.get("YIHAO_BENCH_PG", DEFAULT_PG))
    p.add_argument("--tickets", type=int, default=1_000_000)
    p.add_argument("--due-share", type=float, default=0.01,
                   help="share of the open clocks due at the scan instant")
    p.add_argument("--overdue", type=float, default=0.1,
                   help="share of the due clocks that are overdue (the rest due soon)")
    p.add_argument("--recompute", type=int, default=100_000,
                   help="open clocks recomputed after a rule change")
    p.add_argument("--townships", type=int, default=10)
    p.add_argument("--batch", type=int, default=5000, help="due-soon reminders per statement")
    p.add_argument("--budget", type=float, default=600.0, help="seconds for the scan")
    p.add_argument("--runs", type=int, default=1,
                   help="runs per database, each on a fresh database; the table gives medians")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 20:
        p.error("--runs 1..20")
    if not 1 <= args.tickets <= MAX_TICKETS or not 0 < args.due_share <= 0.5:
        p.error(f"--tickets 1..{MAX_TICKETS}, --due-share in (0, 0.5]")
    if not 0 <= args.overdue <= 1 or not 1 <= args.recompute <= args.tickets:
        p.error("--overdue in [0, 1], --recompute in 1..--tickets")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    runs = {kind: [measure(kind, args) for _ in range(args.runs)] for kind in kinds}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "load": os.getloadavg()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": [r for kind in kinds for r in runs[kind]],
        "medians": {kind: {
            "due_soon_seconds": statistics.median(r["due_soon_scan"]["seconds"] for r in rs),
            "escalation_seconds": statistics.median(r["escalation_scan"]["seconds"] for r in rs),
            "whole_scan_seconds": statistics.median(whole_scan(r) for r in rs),
            "empty_scan_seconds": statistics.median(r["empty_scan"]["seconds"] for r in rs),
        } for kind, rs in runs.items()},
    }, ensure_ascii=False, indent=2))
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
