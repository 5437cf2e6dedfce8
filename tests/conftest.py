"""Test fixtures: a real database (SQLite by default, PostgreSQL + PostGIS when
``YIHAO_TEST_DATABASE_URL`` names one), the schema built once by the migrations, and every
test starting from empty tables.

SQLite: each test gets a copy of a freshly migrated template file. PostgreSQL: tables are
emptied between tests with triggers disabled for that session only
(``session_replication_role = replica``), because the append-only triggers — rightly —
refuse DELETE and TRUNCATE on ``events``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

import hierarchy.models
from server.config import Settings

TEST_DB_URL = os.environ.get("YIHAO_TEST_DATABASE_URL", "")
hierarchy.models.PASSWORD_METHOD = "pbkdf2:sha256:1000"  # fast; never for production
PASSWORD = "test-password-1"


def is_pg() -> bool:
    return TEST_DB_URL.startswith("postgresql")


def _pg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith(
        "postgresql://") else url


def _settings(home: Path, url: str) -> Settings:
    return Settings(home=home, database_url=url, redis_url=None,
                    secret_key="test-secret", data_key="M0ZkTnFIaDJ0Sk5XbkJ6c2lRb2xYa1V1Y2R4a0ZZMFk=",
                    audit_key="test-audit-key")


def load_bench(name: str) -> ModuleType:
    """A script of ``bench/`` as a module (``bench/`` is not a package, and its
    ``escalation.py`` would shadow the domain of that name on ``sys.path``)."""
    path = Path(__file__).resolve().parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def app_at_revision(tmp_path: Path, revision: str, now: Any) -> Flask:
    """An app on its own SQLite file migrated up to ``revision`` only, holding the province
    (unit 1) and the hotline user (user 1) that older rows point at.

    For tests of what a later migration does to rows written before it: they insert rows in
    the old schema, then upgrade (``migrate_to``) and look.
    """
    from server.app import create_app
    from server.core.db import db

    app = create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 'old.sqlite3'}"),
                     YIHAO_JOBS_ENABLED=False)
    with app.app_context():
        migrate_to(revision)
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO units (id, code, name, level, path, active, created_at) VALUES "
                "(1, '210000', '辽宁省', 'province', '/1/', 1, :now)"), {"now": now})
            conn.execute(sa.text(
                "INSERT INTO users (id, username, display_name, unit_id, role, is_system, active,"
                " created_at) VALUES (1, 'hotline', 'hotline', 1, 'platform', 0, 1, :now)"),
                {"now": now})
    return app


def migrate_to(revision: str | None = None, *, down: bool = False) -> None:
    """Upgrade the current app's database to ``revision`` (the newest if None), or downgrade."""
    from flask_migrate import downgrade, upgrade

    from server.app import _migrations_dir

    if down:
        downgrade(directory=str(_migrations_dir()), revision=revision or "-1")
    else:
        upgrade(directory=str(_migrations_dir()), revision=revision or "head")


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Migrate once per test session."""
    from server.app import create_app
    from server.cli import run_migrations

    home = tmp_path_factory.mktemp("yihao-template")
    if is_pg():
        url = _pg_url(TEST_DB_URL)
        admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = url.rsplit("/", 1)[1]
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        url = f"sqlite:///{home / 'template.sqlite3'}"
    app = create_app(_settings(home, url), YIHAO_JOBS_ENABLED=False)
    with app.app_context():
        run_migrations()
        from server.core.db import db

        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        db.engine.dispose()
    yield {"url": url, "home": home, "tables": tables}


@pytest.fixture
def app(_template: dict[str, Any], tmp_path: Path) -> Iterator[Flask]:
    from server.app import create_app
    from server.core.db import db

    if is_pg():
        url = _template["url"]
    else:
        target = tmp_path / "test.sqlite3"
        shutil.copyfile(_template["home"] / "template.sqlite3", target)
        url = f"sqlite:///{target}"
    # Tickets go down level by level unless a test turns auto-dispatch on (test_dispatch_auto.py):
    # the flow tests walk every desk.
    app = create_app(_settings(tmp_path, url), TESTING=True, YIHAO_JOBS_ENABLED=False,
                     YIHAO_AUTO_DISPATCH=False)
    # No app context stays pushed while the test runs: requests must each get their own
    # (and so their own ``g``), exactly as in production. Tests open one where they need it.
    with app.app_context():
        if is_pg():
            with db.engine.begin() as conn:
                conn.execute(sa.text("SET session_replication_role = replica"))
                conn.execute(sa.text(
                    "TRUNCATE " + ", ".join(_template["tables"]) + " RESTART IDENTITY CASCADE"))
                conn.execute(sa.text("SET session_replication_role = DEFAULT"))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ---------------------------------------------------------------- a small world


@dataclass
class World:
    """A slice of Liaoning: two counties, townships, villages, grids and one user per role.

    After set-up the dicts map codes and usernames to database ids (objects would be
    detached from any session by then).
    """

    units: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    grids: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def world(app: Flask) -> World:
    from grids.models import Grid, GridMember
    from hierarchy.models import Level, Role
    from hierarchy.operations import do_create_token, do_create_unit, do_create_user
    from server.core.db import db

    w = World()
    ctx = app.app_context()
    ctx.push()

    def unit(code: str, name: str, level: Level, parent: str | None) -> None:
        w.units[code] = do_create_unit(None, code=code, name=name, level=level,
                                       parent=w.units[parent] if parent else None)

    unit("210000", "辽宁省", Level.province, None)
    unit("210100", "沈阳市", Level.city, "210000")
    unit("210102", "和平区", Level.county, "210100")
    unit("210103", "沈河区", Level.county, "210100")
    unit("210102001", "浑河湾街道", Level.township, "210102")
    unit("210102002", "新华街道", Level.township, "210102")
    unit("210103005", "滨河街道", Level.township, "210103")
    unit("210102001001", "浑河湾社区", Level.village, "210102001")
    unit("210102001002", "长白岛社区", Level.village, "210102001")
    unit("210102002001", "新华社区", Level.village, "210102002")
    unit("210103005001", "滨河社区", Level.village, "210103005")

    def user(name: str, role: Role, code: str) -> None:
        w.users[name] = do_create_user(None, username=name, display_name=name, role=role,
                                       unit=w.units[code], password=PASSWORD,
                                       phone="13800000000")

    user("hotline", Role.platform, "210000")
    user("city", Role.platform, "210100")
    user("county", Role.supervisor, "210102")
    user("county2", Role.supervisor, "210103")
    user("township", Role.station, "210102001")
    user("township2", Role.station, "210102002")
    user("township3", Role.station, "210103005")
    user("contact", Role.contact, "210102001001")
    user("worker", Role.grid_worker, "210102001001")
    user("backup", Role.grid_worker, "210102001001")
    user("worker2", Role.grid_worker, "210102001002")
    user("worker3", Role.grid_worker, "210103005001")
    user("admin", Role.admin, "210000")

    def grid(code: str, name: str, village: str, *members: str) -> None:
        g = Grid(code=code, name=name, unit=w.units[village])
        db.session.add(g)
        for pos, username in enumerate(members):
            db.session.add(GridMember(grid=g, user=w.users[username], position=pos))
        w.grids[code] = g

    grid("G-HHW-01", "浑河湾第一网格", "210102001001", "worker", "backup")
    grid("G-CBD-01", "长白岛第一网格", "210102001002", "worker2")
    grid("G-BH-01", "滨河第一网格", "210103005001", "worker3")
    for name, u in w.users.items():
        w.tokens[name] = do_create_token(None, u, "tests")
    db.session.commit()
    w.units = {k: v.id for k, v in w.units.items()}
    w.users = {k: v.id for k, v in w.users.items()}
    w.grids = {k: v.id for k, v in w.grids.items()}
    db.session.remove()
    ctx.pop()
    return w


@dataclass
class Api:
    """A client acting as one user through a bearer token."""

    client: FlaskClient
    token: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"}
        if key:
            h["Idempotency-Key"] = key
        return h

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", query_string=params, headers=self.headers())

    def post(self, path: str, body: Any = None, key: str | None = None) -> Any:
        return self.client.post(f"/api/v1{path}", json=body if body is not None else {},
                                headers=self.headers(key))


@pytest.fixture
def as_user(client: FlaskClient, world: World) -> Callable[[str], Api]:
    return lambda name: Api(client, world.tokens[name])


ACCEPT_BODY = {
    "source": "hotline", "type": "complaint", "title": "小区门口路灯不亮",
    "content": "和平区浑河湾社区南门路灯连续一周不亮，晚上出行不安全。",
    "urgency": "normal", "location": {"lng": 123.4305, "lat": 41.7420, "crs": "wgs84"},
    "address": "沈阳市和平区浑河湾街道浑河湾社区南门",
    "reporter": {"name": "王小明", "phone": "13912345678", "anonymous": False},
}


@pytest.fixture
def accept(as_user: Callable[[str], Api]) -> Callable[..., dict[str, Any]]:
    """Accept a ticket as the hotline (or ``by``) and return its JSON."""

    def _accept(by: str = "hotline", **overrides: Any) -> dict[str, Any]:
        body = {**ACCEPT_BODY, **overrides}
        if "external_id" not in overrides:
            body["external_id"] = uuid.uuid4().hex
        resp = as_user(by).post("/tickets", body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    return _accept


@pytest.fixture
def walk(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]]):  # type: ignore[no-untyped-def]
    """Bring a new ticket to a given status along the usual path; returns its number."""

    steps = [
        ("assigned", "hotline", "dispatch", {"unit": "210102"}),
        ("assigned", "county", "dispatch", {"unit": "210102001"}),
        ("assigned", "township", "dispatch", {"grid": "G-HHW-01"}),
        ("in_progress", "worker", "sign", {}),
        ("on_site", "worker", "check-in", {"lng": 123.4306, "lat": 41.7421, "accuracy_m": 8,
                                           "fix_age_s": 5}),
        ("replied", "worker", "reply", {"result": "已更换灯泡，路灯恢复正常", "resolution": "resolved"}),
        ("closed", "township", "approve", {}),
    ]

    def _walk(to: str) -> str:
        number = accept()["number"]
        if to == "accepted":
            return number
        for i, (status, who, action, body) in enumerate(steps):
            resp = as_user(who).post(f"/tickets/{number}/{action}", body)
            assert resp.status_code == 200, (action, resp.get_json())
            if status == to and (i + 1 >= len(steps) or steps[i + 1][0] != to):
                return number
        return number

    return _walk


@contextmanager
def count_queries(app: Flask) -> Iterator[list[str]]:
    """Collect the SQL statements run inside the block."""
    from server.core.db import db

    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


# ---------------------------------------------------------------- robustness helpers


def run_concurrently(app: Flask, calls: list[tuple[str, Callable[[Api], Any]]],
                     timeout: float = 120) -> list[Any]:
    """Send requests from threads released together by a barrier; return the responses in order.

    Each call is (bearer token, function of an :class:`Api`) and gets its own test client, as
    separate phones or systems would. A thread's exception is raised here, not swallowed.
    """
    import threading

    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, token: str, send: Callable[[Api], Any]) -> None:
        api = Api(app.test_client(), token)
        try:
            barrier.wait(timeout=30)
            results[i] = send(api)
        except BaseException as exc:  # re-raised below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, token, send))
               for i, (token, send) in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
        assert not thread.is_alive(), "a concurrent request hung"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
