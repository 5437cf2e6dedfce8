"""Grids benchmark: point matching, import, and address resolution accuracy.

Per database (the embedded default on SQLite, and PostgreSQL + PostGIS):

1. a fresh database, migrated, with the real Liaoning divisions (1 476 units);
2. **matching**: square grids (0.002°, about 170 × 220 m) laid as a lattice are bulk-inserted
   to 1 000, then 10 000, then 100 000 grids; at each size ``--points`` random points (about
   nine in ten inside the lattice, the rest in the margin where the nearest-grid and the
   county fallbacks run) are matched one by one exactly as accepting a ticket does
   (``match_location``, each in its own transaction). On SQLite the first call after the
   grids change rebuilds the STRtree; that build is timed separately ("index build"), and the
   latencies are after warm-up;
3. **import**: a GeoJSON file of 10 000 grids (100 villages × 100, inside 新民市) through the
   real importer with every check (validity, overlaps, gaps, county boundary), then the same
   file again (idempotent: nothing changes);
4. **addresses**: ``--addresses`` realistic Liaoning addresses built here from the official
   division list and a small gazetteer of landmarks — full and partial forms, short names,
   levels omitted, spaces and punctuation, call-taker prefixes, street names that contain
   place names — each with its true county and township; the resolver never sees the truth.
   Accuracy at county and township level, and time per address.

    .venv/bin/python bench/grids.py --db both

Prints a table; writes the raw numbers as JSON (``--json``, default bench/results/grids.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_JSON = ROOT / "bench" / "results" / "grids.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/yihao_bench_grids"
CELL = 0.002
MATCH_ORIGIN = (123.0, 40.3)   # the matching lattice grows north-east from here
IMPORT_ORIGIN = (122.75, 41.85)  # inside 新民市 (checked against its real boundary)
IMPORT_TOWNSHIP = "210181001"
GRIDS_PER_VILLAGE = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def recreate_pg(url: str) -> None:
    import sqlalchemy as sa

    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    base, name = url.rsplit("/", 1)
    admin = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"p50_ms": pick(0.50) * 1000, "p95_ms": pick(0.95) * 1000,
            "p99_ms": pick(0.99) * 1000, "mean_ms": statistics.fmean(ordered) * 1000,
            "per_s": len(ordered) / sum(ordered)}


# ---------------------------------------------------------------- seeding


def seed_divisions() -> dict[str, Any]:
    import sqlalchemy as sa

    from hierarchy.divisions import province_divisions
    from hierarchy.models import Unit
    from hierarchy.operations import do_sync_divisions
    from server.core.db import db

    do_sync_divisions(None, list(province_divisions("210000")))
    db.session.commit()
    return {u.code: u.id for u in db.session.execute(sa.select(Unit)).scalars()}


def make_villages(township_code: str, count: int, prefix: str) -> list[int]:
    import sqlalchemy as sa

    from hierarchy.models import Level, Unit
    from hierarchy.operations import do_create_unit
    from server.core.db import db

    township = db.session.execute(sa.select(Unit).where(Unit.code == township_code)).scalar_one()
    existing = {u.code: u.id for u in db.session.execute(
        sa.select(Unit).where(Unit.parent_id == township.id)).scalars()}
    ids = []
    for i in range(count):
        code = f"{township_code}{prefix}{i:04d}"
        if code not in existing:
            existing[code] = do_create_unit(None, code=code, name=f"基准{prefix}{i:04d}社区",
                                            level=Level.village, parent=township).id
        ids.append(existing[code])
    db.session.commit()
    return ids


def lattice_cell(origin: tuple[float, float], index: int, columns: int) -> tuple[float, ...]:
    row, col = divmod(index, columns)
    x, y = origin[0] + col * CELL, origin[1] + row * CELL
    return (round(x, 7), round(y, 7), round(x + CELL, 7), round(y + CELL, 7))


MATCH_COLUMNS = 317  # 317² > 100 000: every size is a compact block of the same lattice


def bulk_insert_grids(start: int, stop: int, village_ids: list[int]) -> float:
    """Grids ``start`` … ``stop - 1`` of the matching lattice, inserted directly (bulk)."""
    import hashlib

    import numpy as np
    import shapely
    import sqlalchemy as sa

    from grids.geometry import normalise_many
    from grids.models import Grid, touch
    from server.core.db import db, utcnow

    t0 = time.perf_counter()
    now = utcnow()
    for chunk_start in range(start, stop, 5000):
        indices = range(chunk_start, min(stop, chunk_start + 5000))
        boxes = [lattice_cell(MATCH_ORIGIN, i, MATCH_COLUMNS) for i in indices]
        geoms = normalise_many(np.array([shapely.box(*b) for b in boxes], dtype=object))
        wkbs = shapely.to_wkb(geoms, include_srid=False)
        db.session.execute(sa.insert(Grid), [
            {"code": f"B{i:06d}", "name": f"基准网格{i}",
             "unit_id": village_ids[i % len(village_ids)], "active": True, "created_at": now,
             "geom": wkb, "min_lng": box[0], "min_lat": box[1], "max_lng": box[2],
             "max_lat": box[3],
             "geom_hash": hashlib.sha256(wkb).hexdigest(), "version": 1, "valid_from": now}
            for i, box, wkb in zip(indices, boxes, wkbs, strict=True)])
    touch(db.session, "grids")
    db.session.commit()
    return time.perf_counter() - t0


def match_points(count: int, size: int, rng: random.Random) -> list[tuple[float, float]]:
    rows = -(-size // MATCH_COLUMNS)
    width, height = min(size, MATCH_COLUMNS) * CELL, rows * CELL
    margin = 0.05
    return [(MATCH_ORIGIN[0] + rng.uniform(-margin, 1 + margin) * width,
             MATCH_ORIGIN[1] + rng.uniform(-margin, 1 + margin) * height)
            for _ in range(count)]


def bench_matching(size: int, points: list[tuple[float, float]]) -> dict[str, Any]:
    from grids.boundaries import boundary_index
    from grids.matching import match_location
    from server.core.db import db, is_postgres

    boundary_index(("21",))  # loaded once per process (a few seconds), before any timing
    t0 = time.perf_counter()
    match_location(point=points[0], address=None)  # warm-up: builds the STRtree on SQLite
    build = time.perf_counter() - t0
    db.session.rollback()
    for p in points[:50]:
        match_location(point=p, address=None)
        db.session.rollback()
    # (a) matching alone: the points matched inside open transactions (as in an accept),
    #     the session's identity map cleared each time so every grid is really loaded;
    latencies, methods = [], {}
    cpu0 = time.process_time()
    for n, p in enumerate(points):
        t = time.perf_counter()
        result = match_location(point=p, address=None)
        latencies.append(time.perf_counter() - t)
        db.session.expunge_all()
        if n % 100 == 99:
            db.session.rollback()
        methods[result.method] = methods.get(result.method, 0) + 1
    cpu_ms = (time.process_time() - cpu0) / len(points) * 1000
    db.session.rollback()
    # (b) one transaction per point, as POST /grids/match does (pool checkout, BEGIN, …).
    own = []
    for p in points[: len(points) // 2]:
        t = time.perf_counter()
        match_location(point=p, address=None)
        db.session.rollback()
        own.append(time.perf_counter() - t)
    server = postgis_execution(points[:300]) if is_postgres() else None
    return {"grids": size, "points": len(points), "methods": methods,
            "first_call_s": build if not is_postgres() else None,
            "cpu_ms_per_point": cpu_ms, **percentiles(latencies),
            "own_transaction": percentiles(own), "postgis_execution": server,
            "load_average": os.getloadavg()}


def postgis_execution(points: list[tuple[float, float]]) -> dict[str, float]:
    """PostgreSQL's own time for the covers query (EXPLAIN ANALYZE): what the database does,
    apart from round trips and scheduling on a shared machine."""
    import sqlalchemy as sa

    from server.core.db import db

    query = sa.text(
        'EXPLAIN (ANALYZE, FORMAT JSON) SELECT id, code, unit_id FROM grids WHERE active IS '
        'true AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) '
        'ORDER BY code COLLATE "C" LIMIT 1')
    times = []
    for x, y in points:
        plan = db.session.execute(query, {"x": x, "y": y}).scalar_one()
        plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
        times.append((plan["Execution Time"] + plan.get("Planning Time", 0.0)) / 1000)
    db.session.rollback()
    return percentiles(times)


def import_file(path: Path) -> None:
    features = []
    columns = 100
    for i in range(GRIDS_PER_VILLAGE * 100):
        village = i // GRIDS_PER_VILLAGE
        # Each village is a 10 × 10 block of cells, so villages are compact (no holes).
        block_row, block_col = divmod(village, 10)
        k = i % GRIDS_PER_VILLAGE
        row, col = block_row * 10 + k // 10, block_col * 10 + k % 10
        box = lattice_cell(IMPORT_ORIGIN, row * columns + col, columns)
        x0, y0, x1, y1 = box
        unit = f"{IMPORT_TOWNSHIP}I{village:04d}"
        features.append({"type": "Feature", "properties": {
            "code": f"I{i:05d}", "name": f"导入网格{i}", "unit": unit},
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1],
                                                             [x0, y1], [x0, y0]]]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                    encoding="utf-8")


def bench_import(home: Path) -> dict[str, Any]:
    from grids.importer import import_grids_file
    from server.core.db import db

    make_villages(IMPORT_TOWNSHIP, 100, "I")
    path = home / "grids-10000.geojson"
    import_file(path)
    out: dict[str, Any] = {"grids": GRIDS_PER_VILLAGE * 100, "file_mb": path.stat().st_size / 1e6}
    for label in ("first", "again"):
        t0 = time.perf_counter()
        report = import_grids_file(path)
        if report.applied:
            db.session.commit()
        else:
            db.session.rollback()
        out[f"{label}_s"] = time.perf_counter() - t0
        out[f"{label}_summary"] = report.summary()
        if report.errors:
            out["errors"] = [str(p) for p in report.errors[:5]]
    return out


# ---------------------------------------------------------------- addresses


ROADS = ["中山路", "人民路", "解放路", "建设大街", "和平街", "胜利路", "友谊街", "文化路", "新华路",
         "长江路", "黄河路", "北京街", "沈阳路", "光明街", "幸福街", "团结路", "工农路", "迎宾路",
         "兴工街", "青年大街", "健康路", "育才街", "太原街", "民主路", "朝阳街", "铁西路", "站前路",
         "滨河路", "湖南街", "东风路", "繁荣街", "前进路"]
ESTATES = ["阳光花园", "幸福家园", "锦绣华庭", "金地名都", "碧水湾", "万科城", "恒大名都",
           "绿地世纪城", "和谐小区", "龙湖春江", "紫郡华府", "翰林雅居", "富丽华", "保利林语"]
LANDMARK_HEADS = ["人民医院", "第三中学", "实验小学", "中心医院", "汽车站", "百货大楼", "体育场",
                  "文化广场", "农贸市场", "供电所", "中心卫生院", "火车站"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
#: Characters call takers confuse by sound (same or near pinyin).
HOMOPHONES = {"湾": "弯", "堡": "保", "屯": "吞", "岭": "领", "沟": "勾", "家": "佳", "河": "和",
              "台": "抬", "营": "赢", "甸": "店", "桥": "乔", "山": "三", "城": "成", "新": "心",
              "东": "冬", "西": "希", "南": "楠", "北": "贝", "阳": "杨", "平": "坪", "安": "岸",
              "兴": "星", "华": "化", "明": "名", "林": "琳", "宁": "凝", "丰": "峰", "龙": "隆",
              "泉": "全", "庄": "装"}
PREFIXES = ["", "", "", "来电反映：", "市民来电，", "地址：", "位于", "反映"]
SUFFIXES = ["", "附近", "门口", "对面", "路口", "东侧", "南门", "后院"]


def strip_suffix(name: str) -> str:
    """The way people shorten names: a plain rule, independent of the resolver's."""
    for suffix in ("满族自治县", "蒙古族自治县", "自治县", "街道", "新区", "市", "区", "县", "镇",
                   "乡"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def build_addresses(count: int, rng: random.Random) -> tuple[list[dict[str, Any]],
                                                              list[dict[str, Any]]]:
    """(addresses with truth, gazetteer landmarks to register first)."""
    from hierarchy.divisions import province_divisions
    from hierarchy.models import Level

    divisions = list(province_divisions("210000"))
    by_code = {d.code: d for d in divisions}
    townships = [d for d in divisions if d.level is Level.township and "撤销" not in d.name]
    landmarks = []
    named: set[tuple[str, str]] = set()  # a county has one 人民医院, one 火车站 …
    for i, town in enumerate(rng.sample(townships, 150)):
        county = by_code[town.parent_code]
        head = LANDMARK_HEADS[i % len(LANDMARK_HEADS)]
        name = f"{strip_suffix(town.name)[:1]}{rng.choice('东西南北新')}{head}" \
            if rng.random() < 0.5 else f"{strip_suffix(county.name)}{head}"
        if (county.code, name) in named:
            continue
        named.add((county.code, name))
        landmarks.append({"name": name, "township": town.code, "county": county.code})
    templates = ["full", "no_province", "no_city", "short", "no_county", "prefix", "rural",
                 "punct", "landmark", "estate_only_town", "typo"]
    weights = [8, 16, 13, 10, 10, 9, 9, 6, 10, 4, 8]
    out = []
    for _ in range(count):
        kind = rng.choices(templates, weights)[0]
        if kind == "landmark":
            lm = rng.choice(landmarks)
            town = by_code[lm["township"]]
        else:
            town = rng.choice(townships)
        county = by_code[town.parent_code]
        city = by_code[county.parent_code]
        road = rng.choice(ROADS)
        n = rng.randint(1, 399)
        estate = rng.choice(ESTATES)
        building = f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元"
        tail = rng.choice(SUFFIXES)
        if kind == "full":
            text = f"辽宁省{city.name}{county.name}{town.name}{road}{n}号"
        elif kind == "no_province":
            text = f"{city.name}{county.name}{town.name}{road}{n}号{building}"
        elif kind == "no_city":
            text = f"{county.name}{town.name}{estate}{building}{tail}"
        elif kind == "short":
            text = f"{strip_suffix(city.name)}{strip_suffix(county.name)}" \
                   f"{strip_suffix(town.name)}{road}{n}号"
        elif kind == "no_county":
            text = f"{city.name}{town.name}{road}{tail or '附近'}"
        elif kind == "prefix":
            text = f"{rng.choice(PREFIXES[3:])}{county.name}{town.name}{estate}{tail}"
        elif kind == "rural":
            village = f"{rng.choice(SURNAMES)}家{rng.choice(['窝堡', '屯', '沟', '堡子', '店'])}村"
            text = f"{county.name}{town.name}{village}{rng.randint(1, 9)}组"
        elif kind == "punct":
            text = f"{city.name} {county.name}，{town.name}（{road}{n}号）"
        elif kind == "landmark":
            text = f"{strip_suffix(city.name)}{lm['name']}{tail or '旁边'}"
        elif kind == "typo":  # one character of the township typed by sound
            spots = [i for i, ch in enumerate(town.name[:-1]) if ch in HOMOPHONES]
            name = town.name
            if spots:
                i = rng.choice(spots)
                name = name[:i] + HOMOPHONES[name[i]] + name[i + 1:]
            text = f"{city.name}{county.name}{name}{road}{n}号"
        else:  # estate_only_town: township and an estate, nothing above
            text = f"{town.name}{estate}{building}"
        out.append({"address": text, "kind": kind, "county": county.code, "township": town.code})
    return out, landmarks


def bench_addresses(count: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from grids.matching import match_location
    from grids.operations import do_upsert_gazetteer_entry
    from hierarchy.models import Unit
    from server.core.db import db

    rng = random.Random(20261130)
    addresses, landmarks = build_addresses(count, rng)
    units = {u.code: u for u in db.session.execute(sa.select(Unit)).scalars()}
    for lm in landmarks:
        do_upsert_gazetteer_entry(None, name=lm["name"], unit=units[lm["township"]],
                                  kind="landmark")
    db.session.commit()
    by_id = {u.id: u for u in units.values()}
    match_location(point=None, address=addresses[0]["address"])  # warm-up: the name index
    db.session.rollback()
    county_ok = township_ok = 0
    latencies = []
    misses: list[dict[str, Any]] = []
    per_kind: dict[str, list[int]] = {}
    for item in addresses:
        t = time.perf_counter()
        result = match_location(point=None, address=item["address"])
        latencies.append(time.perf_counter() - t)
        unit = by_id.get(result.unit.id) if result.unit else None
        db.session.rollback()
        code = unit.code if unit else ""
        got_county = code[:6] if len(code) >= 6 and code.isdigit() and code[4:6] != "00" else ""
        got_town = code[:9] if len(code) >= 9 and code.isdigit() else ""
        c_ok, t_ok = got_county == item["county"], got_town == item["township"]
        county_ok += c_ok
        township_ok += t_ok
        stats = per_kind.setdefault(item["kind"], [0, 0, 0])
        stats[0] += 1
        stats[1] += c_ok
        stats[2] += t_ok
        if not t_ok and len(misses) < 25:
            misses.append({"address": item["address"], "truth": item["township"],
                           "got": code, "reason": result.reason})
    return {"addresses": len(addresses), "landmarks": len(landmarks),
            "county_accuracy": county_ok / len(addresses),
            "township_accuracy": township_ok / len(addresses),
            "by_form": {k: {"n": v[0], "county": v[1] / v[0], "township": v[2] / v[0]}
                        for k, v in sorted(per_kind.items())},
            "examples": addresses[:8], "misses": misses, **percentiles(latencies)}


# ---------------------------------------------------------------- per database


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from server.app import create_app
    from server.cli import run_migrations
    from server.core.db import db

    home = Path(tempfile.mkdtemp(prefix=f"yihao-bench-grids-{kind}-"))
    if kind == "postgres":
        recreate_pg(args.pg_url)
        url = args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        url = f"sqlite:///{home / 'yihao.sqlite3'}"
    result: dict[str, Any] = {"db": kind, "matching": [], "import": None, "addresses": None}
    with environment({"YIHAO_HOME": str(home), "DATABASE_URL": url}):
        app = create_app(YIHAO_JOBS_ENABLED=False)
        with app.app_context():
            run_migrations()
            t0 = time.perf_counter()
            seed_divisions()
            log(f"[{kind}] divisions seeded in {time.perf_counter() - t0:.1f}s")
            if args.addresses:
                result["addresses"] = bench_addresses(args.addresses)
                a = result["addresses"]
                log(f"[{kind}] addresses: county {a['county_accuracy']:.1%}, township "
                    f"{a['township_accuracy']:.1%}")
            if args.import_bench:
                result["import"] = bench_import(home)
                log(f"[{kind}] import 10 000: {result['import']['first_s']:.1f}s, again "
                    f"{result['import']['again_s']:.1f}s")
            villages = make_villages("210102001", 1000, "B")
            rng = random.Random(11)
            inserted = 0
            for size in args.sizes:
                insert_s = bulk_insert_grids(inserted, size, villages)
                inserted = size
                points = match_points(args.points, size, rng)
                row = bench_matching(size, points)
                row["insert_s"] = insert_s
                result["matching"].append(row)
                log(f"[{kind}] {size:>7} grids: p50 {row['p50_ms']:.3f} ms, p99 "
                    f"{row['p99_ms']:.3f} ms, {row['per_s']:.0f}/s")
            db.session.remove()
            db.engine.dispose()
    return result


def machine() -> dict[str, Any]:
    import shapely
    import sqlalchemy

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "shapely": shapely.__version__,
            "geos": ".".join(map(str, shapely.geos_version)), "sqlalchemy": sqlalchemy.__version__}


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| backend | grids | p50 ms | p95 ms | p99 ms | CPU ms/point | points/s | "
             "own transaction p50 ms | index build s | load avg |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for m in r["matching"]:
            first = f"{m['first_call_s']:.2f}" if m["first_call_s"] is not None else "—"
            lines.append(
                f"| {r['db']} | {m['grids']:,} | {m['p50_ms']:.3f} | {m['p95_ms']:.3f} | "
                f"{m['p99_ms']:.3f} | {m['cpu_ms_per_point']:.3f} | {m['per_s']:,.0f} | "
                f"{m['own_transaction']['p50_ms']:.3f} | {first} | {m['load_average'][0]:.1f} |")
    pg = [(m["grids"], m["postgis_execution"]) for r in results for m in r["matching"]
          if m.get("postgis_execution")]
    if pg:
        lines += ["", "| PostGIS covers query, server time (plan + execute) | p50 ms | p99 ms |",
                  "|---|---:|---:|"]
        lines += [f"| {n:,} grids | {e['p50_ms']:.3f} | {e['p99_ms']:.3f} |" for n, e in pg]
    lines += ["", "| backend | import 10 000 grids s | same file again s |", "|---|---:|---:|"]
    for r in results:
        if r["import"]:
            lines.append(f"| {r['db']} | {r['import']['first_s']:.1f} | "
                         f"{r['import']['again_s']:.1f} |")
    lines += ["", "| backend | addresses | county | township | p50 ms | p99 ms |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if a := r["addresses"]:
            lines.append(f"| {r['db']} | {a['addresses']} | {a['county_accuracy']:.1%} | "
                         f"{a['township_accuracy']:.1%} | {a['p50_ms']:.3f} | {a['p99_ms']:.3f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="grid counts, ascending (at most 100 000)")
    parser.add_argument("--points", type=int, default=2000, help="points matched per size")
    parser.add_argument("--addresses", type=int, default=600, help="0 to skip")
    parser.add_argument("--no-import", dest="import_bench", action="store_false")
    parser.add_argument("--pg-url", default=os.environ.get("YIHAO_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    args.sizes = sorted(min(int(s), 100_000) for s in args.sizes.split(","))
    args.points = max(100, min(args.points, 20_000))
    args.addresses = max(0, min(args.addresses, 5000))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [bench_database(kind, args) for kind in kinds]
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "args": {
        k: str(v) for k, v in vars(args).items()}, "results": results}, ensure_ascii=False,
        indent=2), encoding="utf-8")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
