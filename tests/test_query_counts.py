"""No N+1: list endpoints and pages run the same number of SQL statements for 5 rows as for 50.

The rows are spread over many units, grids and assignees, so a relationship loaded lazily
per row shows up as extra statements instead of hiding behind the identity map.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Api, World, count_queries

#: Where tickets go, in turn: (who dispatches, body) steps from the province down.
#: The first five already hold every kind of row (grid, assignee, plain unit), so a
#: difference between 5 and 50 can only come from the number of rows.
PLACES: list[list[tuple[str, dict[str, Any]]]] = [
    [("hotline", {"grid": "G-HHW-01"})],
    [("hotline", {"unit": "210102"})],
    [("hotline", {"unit": "210102001001"}), ("contact", {"worker": "worker"})],
    [("hotline", {"unit": "210102001"})],
    [],
    [("hotline", {"grid": "G-CBD-01"})],
    [("hotline", {"unit": "210103"})],
    [("hotline", {"grid": "G-BH-01"})],
    [("hotline", {"worker": "backup"})],
    [("hotline", {"unit": "210102002"})],
]


@pytest.fixture
def populate(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]]
             ) -> Callable[[int], list[str]]:
    """Bring the number of tickets up to ``n``, spread over PLACES; returns all numbers."""
    numbers: list[str] = []
    places = itertools.cycle(PLACES)

    def _populate(n: int) -> list[str]:
        while len(numbers) < n:
            number = accept()["number"]
            for who, body in next(places):
                resp = as_user(who).post(f"/tickets/{number}/dispatch", body)
                assert resp.status_code == 200, resp.get_json()
            numbers.append(number)
        return numbers

    return _populate


def statements(app: Flask, call: Callable[[], Any]) -> list[str]:
    call()  # warm-up: connection set-up and first-use queries are not what we measure
    with count_queries(app) as seen:
        resp = call()
    assert resp.status_code == 200, resp.get_data()[:300]
    return list(seen)


def _same(small: list[str], large: list[str]) -> None:
    assert len(small) == len(large), "N+1: statements grew with the rows:\n" + "\n".join(
        s.splitlines()[0][:160] for s in large)


@pytest.mark.parametrize("user", ["hotline", "township", "worker"])
def test_ticket_list(app, as_user, populate, user) -> None:
    api = as_user(user)
    populate(5)
    small = statements(app, lambda: api.get("/tickets"))
    populate(50)
    large = statements(app, lambda: api.get("/tickets"))
    assert len(api.get("/tickets").get_json()["items"]) > 5 or user == "worker"
    _same(small, large)
    loads_members = [s for s in large if s.lstrip().startswith("SELECT grid_members.")]
    assert not loads_members, "a list shows the grid's name; it does not need its members"


def test_ticket_list_with_filters(app, as_user, populate) -> None:
    api = as_user("county")
    query = {"status": "assigned,accepted", "unit": "210102", "assignee": "worker",
             "q": "路灯", "limit": 200}
    populate(5)
    small = statements(app, lambda: api.get("/tickets", **query))
    populate(50)
    _same(small, statements(app, lambda: api.get("/tickets", **query)))


def test_ticket_events(app, as_user, walk) -> None:
    number = walk("in_progress")
    api = as_user("township")
    small = statements(app, lambda: api.get(f"/tickets/{number}/events"))
    for i in range(25):
        assert api.post(f"/tickets/{number}/urge", {"note": f"第{i}次"}).status_code == 200
    large = statements(app, lambda: api.get(f"/tickets/{number}/events"))
    assert len(api.get(f"/tickets/{number}/events").get_json()["items"]) > 25
    _same(small, large)


def test_ticket_detail(app, as_user, walk) -> None:
    number = walk("in_progress")
    api = as_user("township")
    small = statements(app, lambda: api.get(f"/tickets/{number}"))
    for i in range(10):
        api.post(f"/tickets/{number}/urge", {"note": f"第{i}次"})
    _same(small, statements(app, lambda: api.get(f"/tickets/{number}")))


def _add_villages(app: Flask, world: World, n: int) -> None:
    from hierarchy.models import Level, Unit
    from hierarchy.operations import do_create_unit
    from server.core.db import db

    with app.app_context():
        parents = [db.session.get(Unit, world.units[c])
                   for c in ("210102001", "210102002", "210103005")]
        existing = len(db.session.query(Unit).all())
        for i in range(existing, existing + n):
            parent = parents[i % len(parents)]
            do_create_unit(None, code=f"{parent.code}{i:03d}", name=f"测试社区{i}",
                           level=Level.village, parent=parent)
        db.session.commit()


@pytest.mark.parametrize("params", [{}, {"level": "village"}, {"parent": "210102001"}])
def test_units(app, world, as_user, params) -> None:
    api = as_user("hotline")
    small = statements(app, lambda: api.get("/units", **params))
    _add_villages(app, world, 60)
    large = statements(app, lambda: api.get("/units", **params))
    assert len(api.get("/units", **params).get_json()["items"]) > 20
    _same(small, large)


def _logged_in(app: Flask, user: str) -> FlaskClient:
    client = app.test_client()
    resp = client.post("/api/v1/session", json={"username": user, "password": PASSWORD})
    assert resp.status_code == 200
    return client


@pytest.mark.parametrize("user", ["hotline", "county", "worker"])
def test_index_page(app, populate, user) -> None:
    client = _logged_in(app, user)
    populate(5)
    small = statements(app, lambda: client.get("/"))
    populate(50)
    large = statements(app, lambda: client.get("/"))
    _same(small, large)


def test_index_page_through_the_form_login(app, world, populate) -> None:
    client = app.test_client()
    assert client.get("/login").status_code == 200
    resp = client.post("/login", data={"username": "township", "password": PASSWORD})
    assert resp.status_code == 302
    populate(5)
    small = statements(app, lambda: client.get("/"))
    populate(30)
    _same(small, statements(app, lambda: client.get("/")))


def test_ticket_page(app, as_user, walk) -> None:
    number = walk("in_progress")
    client = _logged_in(app, "township")
    small = statements(app, lambda: client.get(f"/tickets/{number}"))
    for i in range(15):
        as_user("county").post(f"/tickets/{number}/urge", {"note": f"第{i}次"})
    _same(small, statements(app, lambda: client.get(f"/tickets/{number}")))
