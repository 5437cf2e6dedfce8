"""``yihao demo``: a small seed, twice, on the test database (SQLite, or PostgreSQL when
``YIHAO_TEST_DATABASE_URL`` is set) — every state reached through real actions, an intact
audit chain, the predictable logins, and jurisdiction as the API enforces it."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from grids.models import Grid, GridMember
from hierarchy.models import Level, Role, Unit, User
from server.core.audit import Event, verify_chain
from server.core.db import db, utcnow
from server.demo import run_demo, seed
from server.tickets.models import Status, Ticket
from tests.conftest import _settings, is_pg

pytestmark = pytest.mark.slow

TICKETS = 40  # every scenario (29) at least once, the rest by weight


@pytest.fixture(scope="module")
def app(_template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One seeded database for the whole module (seeding is the slow part), built like the
    conftest ``app``: a copy of the migrated SQLite template, or the emptied PostgreSQL one."""
    from server.app import create_app

    home = tmp_path_factory.mktemp("yihao-demo")
    if is_pg():
        url = _template["url"]
    else:
        shutil.copyfile(_template["home"] / "template.sqlite3", home / "demo.sqlite3")
        url = f"sqlite:///{home / 'demo.sqlite3'}"
    app = create_app(_settings(home, url), TESTING=True, YIHAO_JOBS_ENABLED=False)
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


@pytest.fixture(scope="module")
def seeded(app: Flask) -> dict[str, Any]:
    """The demo seeded twice: the second run must find everything and add nothing."""
    first = run_demo(app, tickets=TICKETS, serve=False)
    with app.app_context():
        events = db.session.execute(sa.select(sa.func.count()).select_from(Event)).scalar_one()
    second = run_demo(app, tickets=TICKETS, serve=False)
    return {"first": first, "second": second, "events_after_first": events}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _count(query: Any) -> int:
    return int(db.session.execute(query).scalar_one())


def test_second_run_changes_nothing(app: Flask, seeded: dict[str, Any]) -> None:
    assert seeded["first"]["created_tickets"] == TICKETS
    assert seeded["second"]["created_tickets"] == 0
    assert seeded["second"]["token"] == seeded["first"]["token"]
    with app.app_context():
        assert _count(sa.select(sa.func.count()).select_from(Ticket)) == TICKETS
        assert _count(sa.select(sa.func.count()).select_from(Event)) == seeded["events_after_first"]


def test_real_divisions_and_only_demo_villages(app: Flask, seeded: dict[str, Any]) -> None:
    with app.app_context():
        levels = dict(db.session.execute(
            sa.select(Unit.level, sa.func.count()).group_by(Unit.level)).all())
        villages = seed.demo_villages()
        assert levels == {"province": 1, "city": 14, "county": 100, "township": 1361,
                          "village": len(villages)}
        assert 35 <= len(villages) <= 45
        for v in villages:
            assert len(v.code) == 12 and v.code.startswith(v.township)


def test_every_state_is_reached(app: Flask, seeded: dict[str, Any]) -> None:
    with app.app_context():
        tickets = db.session.execute(sa.select(Ticket)).scalars().all()
        assert {t.status for t in tickets} == set(Status)
        kinds = set(db.session.execute(sa.select(Event.kind).where(
            Event.ticket_id.is_not(None))).scalars())
        assert {"accept", "dispatch", "sign", "check_in", "reply", "approve", "reject", "return",
                "request_extension", "decide_extension", "urge", "follow_up",
                "reopen"} <= kinds
        closed = [t for t in tickets if t.status == Status.closed]
        assert any(t.followed_up_at is not None for t in closed)
        assert any(t.followed_up_at is None for t in closed)
        assert any(t.reopen_count for t in tickets if t.status != Status.closed)
        assert any(t.extension_days_requested for t in tickets)
        assert any(t.extension_count for t in tickets)
        assert any(t.urge_count for t in tickets)
        assigned = [t for t in tickets if t.status == Status.assigned]
        assert {t.unit.level for t in assigned if t.assignee_id is None} >= {
            Level.city, Level.county, Level.township, Level.village}
        assert any(t.assignee is not None and t.assignee.role == Role.grid_worker
                   for t in assigned)
        assert {t.source for t in tickets} >= {"hotline", "patrol"}
        assert any(t.reporter_anonymous for t in tickets)
        assert any(t.reporter_phone for t in tickets)


def test_history_is_spread_over_the_month_and_chained(app: Flask, seeded: dict[str, Any]) -> None:
    with app.app_context():
        now = utcnow()
        accepted = db.session.execute(sa.select(Ticket.accepted_at)).scalars().all()
        assert max(accepted) <= now
        assert min(accepted) < now - timedelta(days=7)
        numbers = db.session.execute(sa.select(Ticket.number)).scalars().all()
        assert len({n[2:8] for n in numbers}) > 5  # numbers carry many different days
        rows = db.session.execute(sa.select(Event.ticket_id, Event.seq, Event.at).where(
            Event.ticket_id.is_not(None)).order_by(Event.ticket_id, Event.seq)).all()
        for (t1, _s1, at1), (t2, _s2, at2) in itertools.pairwise(rows):
            if t1 == t2:
                assert at1 <= at2 <= now
        assert list(verify_chain()) == []


def test_predictable_users(app: Flask, seeded: dict[str, Any]) -> None:
    with app.app_context():
        users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
        expected = {"admin": (Role.admin, "210000"), "province": (Role.platform, "210000"),
                    "city": (Role.platform, "210100"), "county": (Role.supervisor, "210102"),
                    "township": (Role.station, "210102001"), "hotline": (Role.platform, "210000")}
        for name, (role, unit) in expected.items():
            assert (users[name].role, users[name].unit.code) == (role, unit), name
        assert users["hotline"].is_system and not users["admin"].is_system
        assert users["admin"].check_password(seed.DEMO_PASSWORD)

        villages = seed.demo_villages()
        units = seed.demo_units(villages)
        assert {"210000", "210100", "210300", "210102", "210181", "210302"} <= set(units)
        for code, unit in units.items():
            user = users[f"u-{code}"]
            assert user.unit_id == unit.id and user.role == seed.ROLE_FOR_LEVEL[Level(unit.level)]
        unit_users = {n for n in users if n.startswith("u-")}
        assert unit_users == {f"u-{c}" for c in units}  # not one per township of the province

        grids = db.session.execute(sa.select(Grid)).scalars().all()
        per_village: dict[int, int] = {}
        for grid in grids:
            per_village[grid.unit_id] = per_village.get(grid.unit_id, 0) + 1
            worker = users[f"w-{grid.code}"]
            assert worker.role == Role.grid_worker and worker.unit_id == grid.unit_id
            assert db.session.execute(sa.select(GridMember.position).where(
                GridMember.grid_id == grid.id, GridMember.user_id == worker.id)).scalar_one() == 0
            assert grid.code.startswith(grid.unit.code + "-")
        assert set(per_village.values()) <= {2, 3} and len(per_village) == len(villages)
        assert all(u.phone and len(u.phone) == 11 for u in users.values())


def _all_numbers(client: FlaskClient) -> set[str]:
    numbers: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        resp = client.get("/api/v1/tickets", query_string=params)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        numbers |= {t["number"] for t in body["items"]}
        cursor = body["next_cursor"]
        if not cursor:
            return numbers


def _log_in(client: FlaskClient, username: str) -> None:
    resp = client.post("/api/v1/session",
                       json={"username": username, "password": seed.DEMO_PASSWORD})
    assert resp.status_code == 200, resp.get_json()


def test_jurisdiction_through_the_api(app: Flask, client: FlaskClient,
                                      seeded: dict[str, Any]) -> None:
    with app.app_context():
        rows = db.session.execute(sa.select(Ticket.number, Unit.code).join(
            Unit, Unit.id == Ticket.unit_id)).all()
    every = {number for number, _code in rows}
    heping = {number for number, code in rows if code.startswith("210102")}
    assert 0 < len(heping) < len(every)

    _log_in(client, "county")
    assert _all_numbers(client) == heping
    client.delete("/api/v1/session")
    _log_in(client, "province")
    assert _all_numbers(client) == every

    token = seeded["second"]["token"]  # the printed token works, as the curl example says
    resp = app.test_client().post("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"},
                       json={"source": "hotline", "type": "complaint", "title": "路灯不亮",
                             "content": "演示令牌可以受理工单", "address":
                             "沈阳市和平区浑河湾街道浑河湾社区南门"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["region_code"] == "210102001001"
