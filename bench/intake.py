"""Intake benchmark: tickets accepted over HTTP by gunicorn, on SQLite and PostgreSQL.

What it does, per database:

1. builds a fresh database (a SQLite file in a temporary ``YIHAO_HOME``; PostgreSQL database
   ``yihao_bench``, dropped and recreated), migrates it and seeds the real Liaoning divisions
   (1 476 units, so address matching searches a realistic tree), a platform user with a bearer
   token, a township station user, a village and a grid with its worker, and 100 villages
   with a 1 km grid polygon each (half the tickets' points fall inside one);
2. starts the app under gunicorn (gthread workers) on a free loopback port, with a real Redis
   (the embedded one, as ``REDIS_URL``) so every accept also enqueues its outbox job;
3. runs a load generator in a *separate process* (stdlib ``http.client``, one keep-alive
   connection per client thread) that posts ``POST /api/v1/tickets`` with realistic bodies
   and an ``Idempotency-Key`` per request:

   - *closed loop*: ``--clients`` clients each send the next request as soon as the previous
     answer arrives, for ``--seconds``: the throughput the server sustains, and its latency
     at that concurrency;
   - *open loop*: requests are *scheduled* at a fixed ``--rate`` whatever the server does, and
     latency is measured from the scheduled time (no coordinated omission): the latency a
     steady 300 tickets/s would see;

4. reads ``/proc`` for the CPU that gunicorn's workers, the database backends, Redis and the
   load generator spend per accepted ticket (on a busy machine wall times stretch; CPU time
   much less), and derives the ceiling two idle cores would give;
5. times one dispatch over HTTP (one client, sequential) and in-process (lock, check, do,
   commit), and the audit chain's share of a dispatch (real ``append_event`` against a plain
   event insert without hash or head, patched in this process only; blocks interleaved; for
   the operation alone and for the whole request through the Flask test client), by wall
   time and by CPU;
6. counts the SQL statements of one accept and one dispatch.

Every round is repeated ``--rounds`` times and the tables show each column's median. The
load generator and PostgreSQL share the machine's cores with the server: the numbers are for
the whole system on one box, not for the server alone. ``docs/performance.md`` explains them.

    .venv/bin/python bench/intake.py --db both --clients 8 --seconds 10 --rounds 3

Writes the raw numbers as JSON (``--json``, default ``bench/results/intake.json``).
Loopback only; every loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "intake.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/yihao_bench"
HOST = "127.0.0.1"
#: Hard ceilings so a mistyped flag cannot turn the bench into a flood.
MAX_SECONDS = 120
MAX_CLIENTS = 128
MAX_RATE = 5000
#: Townships that tickets are addressed to; half of them get a grid polygon.
ADDRESSES = 200
#: Half the side of a grid square, in degrees (about 500 m).
GRID_HALF_SIZE = 0.005

# ---------------------------------------------------------------- realistic request bodies

TITLES = [
    ("小区门口路灯不亮", "路灯连续一周不亮，晚上出行不安全，请尽快维修。"),
    ("楼道堆放杂物存在消防隐患", "单元楼道长期堆放纸箱和旧家具，堵塞消防通道。"),
    ("道路井盖破损", "人行道井盖破损下陷，已有行人绊倒，请尽快更换。"),
    ("夜间施工噪音扰民", "工地每天夜里十一点后仍在施工，噪音很大，影响休息。"),
    ("供暖温度不达标", "家中室温只有十六度，多次联系供热公司未解决。"),
    ("垃圾清运不及时", "小区垃圾桶已满三天无人清运，气味很大。"),
    ("占道经营影响通行", "早市摊贩占用机动车道，早高峰车辆无法通行。"),
    ("自来水水压低", "高层住户自来水压力不足，早晚用水高峰基本无水。"),
    ("咨询老年人优待证办理", "想了解老年人优待证在哪里办理，需要带什么材料。"),
    ("建议增设公交站点", "新建小区附近没有公交站，建议增设站点方便居民出行。"),
]
TYPES = ["complaint", "complaint", "help", "report", "consultation", "suggestion"]
URGENCIES = ["normal"] * 8 + ["urgent", "emergency"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
PLACES = ["幸福小区", "阳光花园", "和平里", "滨河社区", "建设大街", "中山路", "工人村", "新华小区"]


def make_body(rng: random.Random, addresses: list[dict[str, Any]]) -> dict[str, Any]:
    """One accept body as the hotline platform would send it (varied, real place names)."""
    title, content = rng.choice(TITLES)
    where = rng.choice(addresses)
    spread = where["spread"]
    address = f"{where['prefix']}{rng.choice(PLACES)}{rng.randint(1, 40)}号楼"
    body: dict[str, Any] = {
        "source": "hotline",
        "type": rng.choice(TYPES),
        "title": title,
        "content": f"{address}：{content}",
        "urgency": rng.choice(URGENCIES),
        "location": {"lng": round(where["lng"] + rng.uniform(-spread, spread), 6),
                     "lat": round(where["lat"] + rng.uniform(-spread, spread), 6),
                     "crs": "wgs84"},
        "address": address,
        "reporter": {"name": rng.choice(SURNAMES) + "先生",
                     "phone": f"139{rng.randint(0, 10**8 - 1):08d}",
                     "anonymous": rng.random() < 0.1},
        "external_id": uuid.uuid4().hex,
    }
    return body


# ---------------------------------------------------------------- the load generator (child)


def _percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-p * len(sorted_values) // 100)))  # ceil(p/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(latencies: list[float], elapsed: float, statuses: Counter[int],
              ok_status: int) -> dict[str, Any]:
    values = sorted(latencies)
    return {
        "ok": statuses.get(ok_status, 0),
        "errors": sum(n for s, n in statuses.items() if s != ok_status),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "elapsed_s": round(elapsed, 3),
        "per_s": round(statuses.get(ok_status, 0) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": _ms(_percentile(values, 50)),
        "p95_ms": _ms(_percentile(values, 95)),
        "p99_ms": _ms(_percentile(values, 99)),
        "max_ms": _ms(values[-1] if values else None),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class _Client:
    """One keep-alive connection; reconnects if the server closed it."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}",
                        "Content-Type": "application/json", "Connection": "keep-alive"}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        payload = json.dumps(body, ensure_ascii=False).encode()
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        for attempt in (1, 2):
            try:
                self.conn.request("POST", path, body=payload, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def closed_loop(cfg: dict[str, Any]) -> dict[str, Any]:
    """``clients`` threads, each posting back to back until ``seconds`` have passed."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = time.perf_counter()
    stop_at = start + cfg["seconds"]

    def run(index: int) -> None:
        rng = random.Random(cfg["seed"] * 1000 + index)
        client = _Client(cfg["port"], cfg["token"])
        mine: list[float] = []
        codes: Counter[int] = Counter()
        try:
            while time.perf_counter() < stop_at:
                body = make_body(rng, cfg["addresses"])
                t0 = time.perf_counter()
                try:
                    status, _ = client.post("/api/v1/tickets", body)
                except OSError:
                    status = 599
                if status == 201:
                    mine.append(time.perf_counter() - t0)
                codes[status] += 1
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                statuses.update(codes)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(cfg["clients"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarise(latencies, time.perf_counter() - start, statuses, 201)


def open_loop(cfg: dict[str, Any]) -> dict[str, Any]:
    """Requests scheduled at a fixed rate; latency counts from the scheduled moment.

    A pool of ``clients`` connections serves the schedule; if the server falls behind, the
    queue grows and so does the measured latency — the slowness is not hidden by the
    clients waiting politely (coordinated omission).
    """
    rate, seconds = cfg["rate"], cfg["seconds"]
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    work: queue.Queue[float | None] = queue.Queue()
    start = time.perf_counter() + 0.05
    # Past this moment a request still waiting is not sent: it counts as status 0 (the server
    # fell too far behind), so a hopeless rate ends in bounded time instead of queueing on.
    give_up = start + seconds + max(5.0, seconds)

    def serve(index: int) -> None:
        rng = random.Random(cfg["seed"] * 1000 + 500 + index)
        client = _Client(cfg["port"], cfg["token"])
        mine: list[float] = []
        codes: Counter[int] = Counter()
        try:
            while (scheduled := work.get()) is not None:
                body = make_body(rng, cfg["addresses"])
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif time.perf_counter() > give_up:
                    codes[0] += 1
                    continue
                try:
                    status, _ = client.post("/api/v1/tickets", body)
                except OSError:
                    status = 599
                if status == 201:
                    mine.append(time.perf_counter() - scheduled)
                codes[status] += 1
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                statuses.update(codes)

    workers = [threading.Thread(target=serve, args=(i,)) for i in range(cfg["clients"])]
    for t in workers:
        t.start()
    # Feed the schedule slightly ahead of time so a worker is free to fire on the dot.
    for i in range(total):
        scheduled = start + i / rate
        ahead = scheduled - time.perf_counter() - 0.005
        if ahead > 0:
            time.sleep(ahead)
        work.put(scheduled)
    for _ in workers:
        work.put(None)
    for t in workers:
        t.join()
    result = summarise(latencies, time.perf_counter() - start, statuses, 201)
    result["offered_per_s"] = rate
    return result


def sequential_actions(cfg: dict[str, Any]) -> dict[str, Any]:
    """One client, one request at a time: the latency of a single action, unloaded."""
    client = _Client(cfg["port"], cfg["token"])
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    start = time.perf_counter()
    try:
        for path, body in cfg["requests"]:
            t0 = time.perf_counter()
            status, _ = client.post(path, body)
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            statuses[status] += 1
    finally:
        client.close()
    return summarise(latencies, time.perf_counter() - start, statuses, 200)


def _child_main() -> None:
    cfg = json.loads(sys.stdin.read())
    mode = cfg["mode"]
    runner = {"closed": closed_loop, "open": open_loop, "sequential": sequential_actions}[mode]
    before = os.times()
    result = runner(cfg)
    after = os.times()
    result["client_cpu_s"] = round(after.user + after.system - before.user - before.system, 3)
    print(json.dumps(result))


def run_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator in its own process (its own GIL, its own core time)."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--load-child"],
        input=json.dumps(cfg), capture_output=True, text=True,
        timeout=cfg.get("seconds", 60) * 3 + 120, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- database and seed


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


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


def seed(app: Any) -> dict[str, Any]:
    """Migrate, then seed the Liaoning divisions and the few people the bench acts as."""
    import sqlalchemy as sa

    from grids.models import Grid, GridMember
    from hierarchy.divisions import province_divisions
    from hierarchy.models import Level, Role, Unit
    from hierarchy.operations import (
        do_create_token,
        do_create_unit,
        do_create_user,
        do_sync_divisions,
    )
    from server.cli import run_migrations
    from server.core.db import db

    with app.app_context():
        run_migrations()
        divisions = list(province_divisions("210000"))
        do_sync_divisions(None, divisions)
        units = {u.code: u for u in db.session.execute(sa.select(Unit)).scalars()}
        village = do_create_unit(None, code="210102001001", name="浑河湾社区",
                                 level=Level.village, parent=units["210102001"])
        hotline = do_create_user(None, username="hotline", display_name="12345 平台",
                                 role=Role.platform, unit=units["210000"], is_system=True)
        station = do_create_user(None, username="township", display_name="浑河湾街道工作站",
                                 role=Role.station, unit=units["210102001"])
        worker = do_create_user(None, username="worker", display_name="网格员",
                                role=Role.grid_worker, unit=village)
        grid = Grid(code="G-HHW-01", name="浑河湾第一网格", unit=village)
        db.session.add(grid)
        db.session.add(GridMember(grid=grid, user=worker, position=0))
        token = do_create_token(None, hotline, "bench")
        station_token = do_create_token(None, station, "bench")
        # Addresses name a real township with its city and county, as call-takers write them.
        # Half of them get a village with a 1 km grid square around their point, and their
        # tickets' points fall inside it; the other half's points fall where no grid is, so
        # matching goes on to boundaries and the address.
        by_code = {d.code: d for d in divisions}
        rng = random.Random(7)
        townships = [d for d in divisions if d.level == Level.township]
        addresses = []
        grids = 0
        for i, d in enumerate(rng.sample(townships, ADDRESSES)):
            county = by_code[d.parent_code] if d.parent_code else None
            city = by_code.get(county.parent_code) if county and county.parent_code else None
            prefix = "".join(x.name for x in (city, county, d) if x and x.level != Level.province)
            lng, lat = rng.uniform(121.0, 125.0), rng.uniform(39.5, 42.5)
            spread = 0.02
            if i % 2 == 0 and _seed_grid(units[d.code], f"{d.code}001", lng, lat):
                grids += 1
                spread = GRID_HALF_SIZE * 0.8
            addresses.append({"prefix": prefix, "lng": lng, "lat": lat, "spread": spread})
        db.session.commit()
        count = len(units) + 1 + grids
        db.session.remove()
    return {"token": token, "station_token": station_token, "addresses": addresses,
            "units": count, "grids_with_polygons": grids, "hotline": "hotline"}


def _seed_grid(township: Any, village_code: str, lng: float, lat: float) -> bool:
    """A village under ``township`` with one square grid around (lng, lat); False when this
    version of the code has no grid polygons (the bench then runs without them)."""
    try:
        from shapely.geometry import box

        from grids.operations import do_create_grid
    except ImportError:
        return False
    from hierarchy.models import Level
    from hierarchy.operations import do_create_unit

    village = do_create_unit(None, code=village_code, name=f"{township.name}第一社区",
                             level=Level.village, parent=township)
    do_create_grid(None, code=f"G-{village_code}", name=f"{township.name}第一网格", unit=village,
                   geom=box(lng - GRID_HALF_SIZE, lat - GRID_HALF_SIZE, lng + GRID_HALF_SIZE,
                            lat + GRID_HALF_SIZE))
    return True


# ---------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def pg_backends(url: str) -> list[int]:
    """The server processes serving connections to the bench database."""
    import sqlalchemy as sa

    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    base, name = url.rsplit("/", 1)
    engine = sa.create_engine(base + "/postgres")
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            ).scalars())
    finally:
        engine.dispose()


class CpuMeter:
    """CPU used by the server side (gunicorn workers, database backends, Redis) between
    :meth:`start` and :meth:`stop`; processes that appear meanwhile count from zero."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]]) -> None:
        self.pids = pids
        self.before: dict[int, float] = {}

    def start(self) -> None:
        self.before = {pid: cpu_seconds(pid) for group in self.pids().values() for pid in group}

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, group in self.pids().items():
            used[name] = round(sum(max(0.0, cpu_seconds(pid) - self.before.get(pid, 0.0))
                                   for pid in group), 3)
        return used


# ---------------------------------------------------------------- gunicorn

SERVER_CODE = """
import sys
from server.app import create_app
from server.wsgi_server import run_gunicorn
run_gunicorn(create_app(), sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
"""


FLOOR_SERVER = ROOT / "bench" / "intake_floor.py"


class Server:
    """gunicorn in a subprocess on a free loopback port; stopped by its own pid.

    ``floor`` serves ``bench/intake_floor.py`` (the stack's floor) instead of Yihao."""

    def __init__(self, env: dict[str, str], home: Path, workers: int, threads: int, *,
                 floor: bool = False) -> None:
        self.port = free_port()
        self.log = (home / "gunicorn.log").open("ab")
        program = [str(FLOOR_SERVER)] if floor else ["-c", SERVER_CODE]
        self.proc = subprocess.Popen(
            [sys.executable, *program, HOST, str(self.port), str(workers), str(threads)],
            env={**os.environ, **env}, cwd=str(ROOT), stdout=self.log, stderr=self.log,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.proc.returncode}; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/api/v1/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not become healthy in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to the master: it stops its workers gracefully
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- in-process measurements


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def statement_counts(app: Any, token: str, addresses: list[dict[str, Any]]) -> dict[str, Any]:
    """SQL statements (and flushes) one accept and one dispatch send, via the test client."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from server.core.db import db

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(11)
    statements: list[str] = []
    flushes = [0]

    def on_sql(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    def on_flush(*_args: Any) -> None:
        flushes[0] += 1

    with app.app_context():
        engine = db.engine

    def accept() -> Any:
        return client.post("/api/v1/tickets", json=make_body(rng, addresses),
                           headers={**headers, "Idempotency-Key": str(uuid.uuid4())})

    accept()  # warms caches (compiled statements, the first connection)
    number = accept().get_json()["number"]

    def dispatch() -> Any:
        return client.post(f"/api/v1/tickets/{number}/dispatch", json={"unit": "210102"},
                           headers={**headers, "Idempotency-Key": str(uuid.uuid4())})

    result: dict[str, Any] = {}
    for name, call in (("accept", accept), ("dispatch", dispatch)):
        statements.clear()
        flushes[0] = 0
        event.listen(engine, "before_cursor_execute", on_sql)
        event.listen(Session, "after_flush", on_flush)
        try:
            response = call()
        finally:
            event.remove(engine, "before_cursor_execute", on_sql)
            event.remove(Session, "after_flush", on_flush)
        assert response.status_code in (200, 201), response.get_json()
        kinds = Counter(statements)
        result[name] = {"statements": len(statements), "flushes": flushes[0],
                        "by_kind": dict(sorted(kinds.items()))}
    return result


def inprocess_accept(app: Any, token: str, addresses: list[dict[str, Any]], repeat: int,
                     db_pids: Callable[[], list[int]]) -> dict[str, Any]:
    """Accept through the Flask test client: the app's own cost, no HTTP server, one thread.

    Also the CPU per accept of this process and of the database's backends: on a busy
    machine wall times stretch, CPU time much less.
    """
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(13)
    times = []
    bodies = [make_body(rng, addresses) for _ in range(repeat)]
    meter = CpuMeter(lambda: {"db": db_pids()})
    meter.start()
    cpu0 = time.process_time()
    for body in bodies:
        key = str(uuid.uuid4())
        times.append(_timed(lambda b=body, k=key: client.post(
            "/api/v1/tickets", json=b, headers={**headers, "Idempotency-Key": k})))
    app_cpu = time.process_time() - cpu0
    db_cpu = meter.stop()["db"]
    times.sort()
    return {"n": repeat, "p50_ms": _ms(_percentile(times, 50)),
            "p95_ms": _ms(_percentile(times, 95)),
            "app_cpu_ms": round(1000 * app_cpu / repeat, 2),
            "db_cpu_ms": round(1000 * db_cpu / repeat, 2)}


def _accepted_numbers(app: Any, username: str, limit: int) -> list[str]:
    import sqlalchemy as sa

    from hierarchy.models import User
    from server.core.db import db
    from server.tickets.models import Status, Ticket
    from server.tickets.queries import visible_tickets

    with app.app_context():
        actor = db.session.execute(
            sa.select(User).where(User.username == username)).scalar_one()
        numbers = list(db.session.execute(
            visible_tickets(actor).with_only_columns(Ticket.number)
            .where(Ticket.status == Status.accepted).order_by(Ticket.id).limit(limit)
        ).scalars())
        db.session.remove()
    return numbers


_plain_seq = itertools.count(1)


def _plain_append_event(stream: str, kind: str, *, actor: Any | None,
                        data: dict[str, Any] | None = None, ticket_id: int | None = None,
                        at: Any = None, head_locked: bool = False,
                        **_ignored: Any) -> Any:
    """The same event row without the chain: no head row read or written, no canonical
    JSON, no HMAC. Rows go to a stream of their own, numbered by a process counter, so they
    never collide with the real chain."""
    from server.core.audit import GENESIS, Event
    from server.core.db import db, utcnow

    event = Event(stream=f"{stream}~plain", seq=next(_plain_seq), ticket_id=ticket_id,
                  kind=kind, actor_id=getattr(actor, "id", None),
                  actor_name=getattr(actor, "username", None) or "system",
                  at=at or utcnow(), data=data or {}, prev_hash=GENESIS, hash=GENESIS)
    db.session.add(event)
    db.session.flush()
    return event


def dispatch_inprocess(app: Any, numbers: list[str], *, plain_audit: bool,
                       flip: dict[str, int]) -> list[float]:
    """Time lock + check_dispatch + do_dispatch + commit, each in a fresh session.

    The actor is loaded before the clock starts, as the token lookup does before a route
    runs. Tickets alternate between two counties so every dispatch is a real change.
    """
    import sqlalchemy as sa

    from hierarchy.models import User
    from server.core.db import db
    from server.tickets import operations as ops
    from server.tickets.queries import get_visible_ticket
    from server.tickets.schemas import DispatchBody

    targets = ("210102", "210103")
    original = ops.append_event
    if plain_audit:
        ops.append_event = _plain_append_event  # type: ignore[assignment]
    times: list[float] = []
    try:
        with app.app_context():
            for number in numbers:
                actor = db.session.execute(
                    sa.select(User).where(User.username == "hotline")).scalar_one()
                _ = actor.unit.path
                i = flip.get(number, 0)
                flip[number] = i + 1
                body = DispatchBody(unit=targets[i % 2])
                t0 = time.perf_counter()
                ticket = get_visible_ticket(actor, number, lock=True)
                ops.do_dispatch(ops.check_dispatch(actor, ticket, body))
                db.session.commit()
                times.append(time.perf_counter() - t0)
                db.session.remove()
    finally:
        ops.append_event = original  # type: ignore[assignment]
    return times


def dispatch_request(app: Any, token: str, numbers: list[str], *, plain_audit: bool,
                     flip: dict[str, int]) -> list[float]:
    """Time whole dispatch requests through the Flask test client (token lookup,
    Idempotency-Key, route, operation, commit, JSON), without an HTTP server."""
    from server.tickets import operations as ops

    targets = ("210102", "210103")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    original = ops.append_event
    if plain_audit:
        ops.append_event = _plain_append_event  # type: ignore[assignment]
    times: list[float] = []
    try:
        for number in numbers:
            i = flip.get(number, 0)
            flip[number] = i + 1
            t0 = time.perf_counter()
            response = client.post(f"/api/v1/tickets/{number}/dispatch",
                                   json={"unit": targets[i % 2]},
                                   headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
            times.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"dispatch {number}: {response.get_json()}")
    finally:
        ops.append_event = original  # type: ignore[assignment]
    return times


def audit_overhead(run: Callable[..., list[float]], numbers: list[str], blocks: int,
                   flip: dict[str, int], scope: str,
                   db_pids: Callable[[], list[int]]) -> dict[str, Any]:
    """Interleaved blocks (ABBA…) of real vs plain-audit dispatches, compared by median
    wall time and by CPU (this process plus the database backends) per action."""
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, float] = {False: 0.0, True: 0.0}
    # Warm both paths before measuring.
    run(numbers[:20], plain_audit=False, flip=flip)
    run(numbers[:20], plain_audit=True, flip=flip)
    per_block = max(1, len(numbers) // 2)
    meter = CpuMeter(lambda: {"db": db_pids()})
    for b in range(blocks):
        chunk = numbers[(b % 2) * per_block:(b % 2 + 1) * per_block]
        order = (False, True) if b % 2 == 0 else (True, False)
        for plain_audit in order:
            meter.start()
            cpu0 = time.process_time()
            wall[plain_audit].extend(run(chunk, plain_audit=plain_audit, flip=flip))
            cpu[plain_audit] += time.process_time() - cpu0 + meter.stop()["db"]
    real_med, plain_med = statistics.median(wall[False]), statistics.median(wall[True])
    n = len(wall[False])
    real_cpu, plain_cpu = cpu[False] / n, cpu[True] / n
    return {
        "action": f"dispatch ({scope})",
        "n_each": n,
        "with_chain_p50_ms": _ms(real_med),
        "plain_insert_p50_ms": _ms(plain_med),
        "added_pct": round(100 * (real_med - plain_med) / plain_med, 1),
        "with_chain_cpu_ms": _ms(real_cpu),
        "plain_insert_cpu_ms": _ms(plain_cpu),
        "added_pct_cpu": round(100 * (real_cpu - plain_cpu) / plain_cpu, 1),
    }


def profile_accepts(app: Any, token: str, addresses: list[dict[str, Any]], n: int,
                    out: Path) -> None:
    """cProfile ``n`` in-process accepts; print the top of the profile and save it."""
    import cProfile
    import pstats

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(17)
    bodies = [make_body(rng, addresses) for _ in range(n)]
    profiler = cProfile.Profile()
    profiler.enable()
    for body in bodies:
        client.post("/api/v1/tickets", json=body,
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    profiler.disable()
    out.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(out))
    stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
    print(f"\n--- cProfile of {n} in-process accepts ({out}) ---", file=sys.stderr)
    stats.print_stats(35)


# ---------------------------------------------------------------- one database


def median_of(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def server_meter(server: Server, kind: str, url: str, redis_pid: int) -> CpuMeter:
    return CpuMeter(lambda: {
        "app": children_of(server.proc.pid),
        "db": pg_backends(url) if kind == "postgres" else [],
        "redis": [redis_pid],
    })


def closed_round(base: dict[str, Any], meter: CpuMeter, seconds: float, seed: int
                 ) -> dict[str, Any]:
    """One closed-loop round, with the CPU every process spent per accepted ticket."""
    load = os.getloadavg()[0]
    meter.start()
    res = run_child({**base, "mode": "closed", "seconds": seconds, "seed": seed})
    used = meter.stop()
    used["client"] = res.pop("client_cpu_s")
    res["loadavg_1m_before"] = load
    res["cpu_ms_per_ticket"] = {
        k: round(1000 * v / res["ok"], 2) if res["ok"] else None for k, v in used.items()}
    server_ms = sum(v for k, v in res["cpu_ms_per_ticket"].items()
                    if k != "client" and v is not None)
    res["cpu_ms_per_ticket"]["server"] = round(server_ms, 2)
    return res


def floor(kind: str, args: argparse.Namespace, env: dict[str, str], home: Path, url: str,
          base: dict[str, Any], redis_pid: int) -> list[dict[str, Any]]:
    """The same closed loop against ``bench/intake_floor.py``: the stack with only the writes
    no accept can do without (see that file). A lower bound for the real accept's CPU."""
    server = Server(env, home, args.workers, args.threads, floor=True)
    try:
        base = {**base, "port": server.port}
        log(f"[{kind}] floor: gunicorn on port {server.port}; warm-up {args.warmup}s")
        run_child({**base, "mode": "closed", "seconds": args.warmup, "seed": 998})
        meter = server_meter(server, kind, url, redis_pid)
        rounds = []
        for r in range(args.rounds):
            res = closed_round(base, meter, args.seconds, 50 + r)
            rounds.append(res)
            log(f"[{kind}] floor round {r + 1}: {res['per_s']}/s p50 {res['p50_ms']} "
                f"p99 {res['p99_ms']} ms, errors {res['errors']}; "
                f"CPU ms/request {res['cpu_ms_per_ticket']}")
        return rounds
    finally:
        server.stop()


def closed_summary(rounds: list[dict[str, Any]], clients: int, seconds: float
                   ) -> dict[str, Any]:
    return {"clients": clients, "seconds": seconds, "rounds": rounds, "median": {
        **{k: median_of(rounds, k) for k in
           ("per_s", "p50_ms", "p95_ms", "p99_ms", "errors", "loadavg_1m_before")},
        "cpu_ms_per_ticket": {
            k: median_of([r["cpu_ms_per_ticket"] for r in rounds], k)
            for k in ("app", "db", "redis", "server", "client")},
    }}


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from server.app import create_app
    from server.core.db import db
    from server.embedded_redis import ensure_running
    from server.embedded_redis import stop as stop_redis

    home = Path(tempfile.mkdtemp(prefix=f"yihao-bench-{kind}-"))
    if kind == "postgres":
        recreate_pg(args.pg_url)
        url = args.pg_url
    else:
        url = f"sqlite:///{home / 'yihao.sqlite3'}"
    redis_url = ensure_running(home)
    env = {"YIHAO_HOME": str(home), "DATABASE_URL": url, "REDIS_URL": redis_url}
    log(f"[{kind}] home {home}")
    try:
        with environment(env):
            app = create_app()
            t0 = time.perf_counter()
            seeded = seed(app)
            log(f"[{kind}] migrated and seeded {seeded['units']} units, "
                f"{seeded['grids_with_polygons']} grid polygons in "
                f"{time.perf_counter() - t0:.1f}s")
            with app.app_context():
                db.engine.dispose()

            server = Server(env, home, args.workers, args.threads)
            try:
                base = {"port": server.port, "token": seeded["token"],
                        "addresses": seeded["addresses"], "clients": args.clients}
                log(f"[{kind}] gunicorn {args.workers} workers x {args.threads} threads on "
                    f"port {server.port}; warm-up {args.warmup}s")
                run_child({**base, "mode": "closed", "seconds": args.warmup, "seed": 999})
                redis_pid = int((home / "redis" / "redis.pid").read_text().strip())
                meter = server_meter(server, kind, url, redis_pid)
                closed_rounds, open_rounds = [], []
                for r in range(args.rounds):
                    res = closed_round(base, meter, args.seconds, r)
                    closed_rounds.append(res)
                    log(f"[{kind}] round {r + 1} closed: {res['per_s']}/s p50 {res['p50_ms']} "
                        f"p95 {res['p95_ms']} p99 {res['p99_ms']} ms, errors {res['errors']}; "
                        f"CPU ms/ticket {res['cpu_ms_per_ticket']} "
                        f"(load {res['loadavg_1m_before']:.1f})")
                    if args.rate:
                        load = os.getloadavg()[0]
                        res = run_child({**base, "mode": "open", "seconds": args.seconds,
                                         "rate": args.rate, "seed": 100 + r,
                                         "clients": max(args.clients, 16)})
                        res["loadavg_1m_before"] = load
                        res.pop("client_cpu_s", None)
                        open_rounds.append(res)
                        log(f"[{kind}] round {r + 1} open @{args.rate}/s: {res['per_s']}/s "
                            f"p50 {res['p50_ms']} p95 {res['p95_ms']} p99 {res['p99_ms']} ms, "
                            f"errors {res['errors']}")
                numbers = _accepted_numbers(app, "hotline", args.dispatches * 3)
                http_numbers, rest = numbers[:args.dispatches], numbers[args.dispatches:]
                dispatch_http = run_child({
                    **base, "mode": "sequential",
                    "requests": [[f"/api/v1/tickets/{n}/dispatch", {"unit": "210102"}]
                                 for n in http_numbers]})
                dispatch_http.pop("client_cpu_s", None)
                log(f"[{kind}] dispatch over HTTP: p50 {dispatch_http['p50_ms']} ms "
                    f"(n={dispatch_http['ok']}, errors {dispatch_http['errors']})")
            finally:
                server.stop()
            floor_rounds = []
            if args.floor:
                floor_rounds = floor(kind, args, env, home, url, base, redis_pid)

            counts = statement_counts(app, seeded["token"], seeded["addresses"])
            log(f"[{kind}] statements: accept {counts['accept']}, dispatch {counts['dispatch']}")
            accept_inproc = inprocess_accept(
                app, seeded["token"], seeded["addresses"], 200,
                lambda: pg_backends(url) if kind == "postgres" else [])
            log(f"[{kind}] accept in-process: p50 {accept_inproc['p50_ms']} ms, CPU "
                f"{accept_inproc['app_cpu_ms']} ms app + {accept_inproc['db_cpu_ms']} ms db")
            flip: dict[str, int] = {}
            dispatch_inproc_times = sorted(
                dispatch_inprocess(app, rest, plain_audit=False, flip=flip))
            dispatch_inproc = {"n": len(dispatch_inproc_times),
                               "p50_ms": _ms(_percentile(dispatch_inproc_times, 50)),
                               "p95_ms": _ms(_percentile(dispatch_inproc_times, 95))}
            log(f"[{kind}] dispatch in-process: p50 {dispatch_inproc['p50_ms']} ms")
            db_pids = (lambda: pg_backends(url)) if kind == "postgres" else (lambda: [])
            half = len(rest) // 2
            audit = {
                "operation": audit_overhead(
                    lambda nums, **kw: dispatch_inprocess(app, nums, **kw), rest[:half],
                    args.audit_blocks, flip, "lock + check + do + commit, in-process", db_pids),
                "request": audit_overhead(
                    lambda nums, **kw: dispatch_request(app, seeded["token"], nums, **kw),
                    rest[half:], args.audit_blocks, flip,
                    "whole request through the Flask test client", db_pids),
            }
            for scope, a in audit.items():
                log(f"[{kind}] audit chain, {scope}: {a['with_chain_p50_ms']} vs "
                    f"{a['plain_insert_p50_ms']} ms → +{a['added_pct']} % (wall), CPU "
                    f"{a['with_chain_cpu_ms']} vs {a['plain_insert_cpu_ms']} ms → "
                    f"+{a['added_pct_cpu']} %")
            if args.profile:
                profile_accepts(app, seeded["token"], seeded["addresses"], args.profile,
                                ROOT / "bench" / "results" / f"accept-{kind}.prof")
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    finally:
        stop_redis(home)
    return {
        "database": kind,
        "seed": {"units": seeded["units"], "grids_with_polygons": seeded["grids_with_polygons"],
                 "addresses": len(seeded["addresses"])},
        "server": {"workers": args.workers, "threads": args.threads, "worker_class": "gthread"},
        "closed_loop": closed_summary(closed_rounds, args.clients, args.seconds),
        "floor": closed_summary(floor_rounds, args.clients, args.seconds) if floor_rounds
        else None,
        "open_loop": {"rate": args.rate, "seconds": args.seconds, "rounds": open_rounds,
                      "median": {k: median_of(open_rounds, k) for k in
                                 ("per_s", "p50_ms", "p95_ms", "p99_ms", "errors",
                                  "loadavg_1m_before")}},
        "dispatch_http": dispatch_http,
        "dispatch_inprocess": dispatch_inproc,
        "accept_inprocess": accept_inproc,
        "statements": counts,
        "audit_overhead": audit,
    }


# ---------------------------------------------------------------- report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    facts: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()}
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        facts["memory_gib"] = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    import sqlite3

    facts["sqlite"] = sqlite3.sqlite_version
    facts["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return facts


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown tables docs/performance.md quotes (medians of the rounds)."""
    def cell(value: Any) -> str:
        return "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    keys = ("per_s", "p50_ms", "p95_ms", "p99_ms", "errors", "loadavg_1m_before")
    lines = ["| database | load | tickets/s | p50 ms | p95 ms | p99 ms | errors | load avg |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c = r["closed_loop"]["median"]
        lines.append(f"| {r['database']} | closed loop, {r['closed_loop']['clients']} clients | "
                     + " | ".join(cell(c[k]) for k in keys) + " |")
        if r.get("floor"):
            f = r["floor"]["median"]
            lines.append(f"| {r['database']} | *floor* (bench/intake_floor.py), "
                         f"{r['floor']['clients']} clients | "
                         + " | ".join(cell(f[k]) for k in keys) + " |")
        if r["open_loop"]["rounds"]:
            o = r["open_loop"]["median"]
            lines.append(f"| {r['database']} | open loop, {r['open_loop']['rate']}/s offered | "
                         + " | ".join(cell(o.get(k)) for k in keys) + " |")
    cpus = os.cpu_count() or 1
    lines += ["", "| database | CPU ms per accepted ticket: app | db | redis | server total | "
              f"load generator | server-side ceiling on {cpus} idle cores |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c = r["closed_loop"]["median"]["cpu_ms_per_ticket"]
        ceiling = round(1000 * cpus / c["server"]) if c.get("server") else None
        lines.append(f"| {r['database']} | " + " | ".join(
            cell(c.get(k)) for k in ("app", "db", "redis", "server", "client"))
            + f" | {cell(ceiling)}/s |")
        if r.get("floor"):
            f = r["floor"]["median"]["cpu_ms_per_ticket"]
            ceiling = round(1000 * cpus / f["server"]) if f.get("server") else None
            lines.append(f"| {r['database']} *floor* | " + " | ".join(
                cell(f.get(k)) for k in ("app", "db", "redis", "server", "client"))
                + f" | {cell(ceiling)}/s |")
    lines += ["", "| database | dispatch HTTP p50 ms | dispatch in-process p50 ms | "
              "accept in-process p50 ms | accept in-process CPU ms (app + db) | "
              "SQL per accept | SQL per dispatch |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        a = r["accept_inprocess"]
        lines.append(
            f"| {r['database']} | {cell(r['dispatch_http']['p50_ms'])} | "
            f"{cell(r['dispatch_inprocess']['p50_ms'])} | "
            f"{cell(a['p50_ms'])} | {cell(a['app_cpu_ms'])} + {cell(a['db_cpu_ms'])} | "
            f"{r['statements']['accept']['statements']} | "
            f"{r['statements']['dispatch']['statements']} |")
    lines += ["", "| database | audit chain adds to a dispatch | wall p50 with / without | "
              "wall added | CPU with / without | CPU added |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        for scope, a in r["audit_overhead"].items():
            lines.append(
                f"| {r['database']} | {scope} | {cell(a['with_chain_p50_ms'])} / "
                f"{cell(a['plain_insert_p50_ms'])} ms | {a['added_pct']} % | "
                f"{cell(a['with_chain_cpu_ms'])} / {cell(a['plain_insert_cpu_ms'])} ms | "
                f"{a['added_pct_cpu']} % |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--clients", type=int, default=8, help="closed-loop concurrent clients")
    p.add_argument("--seconds", type=float, default=10, help="length of each measured round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per database (medians shown)")
    p.add_argument("--rate", type=int, default=300,
                   help="open-loop offered tickets/s (0 skips the open loop)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured warm-up")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--dispatches", type=int, default=200,
                   help="dispatches timed over HTTP (and twice as many in-process)")
    p.add_argument("--audit-blocks", type=int, default=6,
                   help="interleaved blocks for the audit-chain comparison")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also cProfile N in-process accepts (printed, saved as .prof)")
    p.add_argument("--floor", action="store_true",
                   help="also measure the stack's floor (bench/intake_floor.py) the same way")
    p.add_argument("--pg-url", default=DEFAULT_PG)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--load-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not (0 < args.seconds <= MAX_SECONDS and 0 < args.warmup <= MAX_SECONDS):
        p.error(f"--seconds and --warmup must be in (0, {MAX_SECONDS}]")
    if not 1 <= args.clients <= MAX_CLIENTS:
        p.error(f"--clients must be 1..{MAX_CLIENTS}")
    if not 0 <= args.rate <= MAX_RATE:
        p.error(f"--rate must be 0..{MAX_RATE}")
    if not args.pg_url.startswith("postgresql://postgres@127.0.0.1"):
        p.error("--pg-url must be a loopback PostgreSQL URL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load_child:
        _child_main()
        return 0
    sys.path.insert(0, str(ROOT))
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [bench_database(kind, args) for kind in kinds]
    report = {"benchmark": "intake", "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "machine": machine(), "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(table(results))
    print(f"\nraw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
