"""Who sees which tickets, and whose personal data.

A unit sees its own subtree; a grid worker sees the tickets assigned to them, those in
their grids and those they reported themselves. Everything else answers 404 — the same 404
as a ticket that does not exist, so a probe learns nothing. List filters narrow what one
sees and never widen it: a filter naming a unit, grid or person outside one's jurisdiction
(decided here) simply matches nothing — 200 with no items, not 422, because unit and grid
codes are official, public codes and refusing them would only tell the caller which ones
lie outside their scope. An unknown unit code is still 422 (a typo the caller should see).

Reporter data is masked for everyone by default and unmasked only through the audited
``POST /tickets/{n}/reveal-reporter`` for the roles of ``permissions.can_see_reporter``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ACCEPT_BODY, PASSWORD, Api, World

#: Each unit's subtree in the test world.
ALL_UNITS = ("210000", "210100", "210102", "210103", "210102001", "210102002", "210103005",
             "210102001001", "210102001002", "210102002001", "210103005001")
SUBTREE = {
    "210000": set(ALL_UNITS),
    "210100": set(ALL_UNITS) - {"210000"},
    "210102": {"210102", "210102001", "210102002", "210102001001", "210102001002",
               "210102002001"},
    "210103": {"210103", "210103005", "210103005001"},
    "210102001": {"210102001", "210102001001", "210102001002"},
    "210102002": {"210102002", "210102002001"},
    "210103005": {"210103005", "210103005001"},
    "210102001001": {"210102001001"},
}
UNIT_OF = {"hotline": "210000", "admin": "210000", "city": "210100", "county": "210102",
           "county2": "210103", "township": "210102001", "township2": "210102002",
           "township3": "210103005", "contact": "210102001001"}
WORKER_GRIDS = {"worker": {"G-HHW-01"}, "backup": {"G-HHW-01"}, "worker2": {"G-CBD-01"},
                "worker3": {"G-BH-01"}}
USERS = (*UNIT_OF, *WORKER_GRIDS)
BINHE = "沈阳市沈河区滨河街道滨河社区"
PHONE, NAME = ACCEPT_BODY["reporter"]["phone"], ACCEPT_BODY["reporter"]["name"]


@dataclass
class Placed:
    number: str
    external_id: str
    created_by: str


@pytest.fixture
def tickets(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]]
            ) -> dict[str, Placed]:
    """Tickets all over the world, each brought where its key says."""

    def place(key: str, moves: list[tuple[str, dict[str, Any]]], by: str = "hotline",
              **overrides: Any) -> None:
        t = accept(by=by, **overrides)
        for who, target in moves:
            resp = as_user(who).post(f"/tickets/{t['number']}/dispatch", target)
            assert resp.status_code == 200, (key, resp.get_json())
        out[key] = Placed(t["number"], t["external_id"], by)

    out: dict[str, Placed] = {}
    place("province", [])
    place("city", [("hotline", {"unit": "210100"})])
    place("county", [("hotline", {"unit": "210102"})])
    place("county2", [("hotline", {"unit": "210103"})], address=BINHE, location=None)
    place("township", [("hotline", {"unit": "210102001"})])
    place("township2", [("hotline", {"unit": "210102002"})])
    place("grid", [("hotline", {"unit": "210102001"}), ("township", {"grid": "G-HHW-01"})])
    place("grid3", [("hotline", {"grid": "G-BH-01"})], address=BINHE, location=None)
    place("person", [("hotline", {"worker": "worker"})], address=BINHE, location=None)
    # reported on patrol by worker2, then handed to another village's grid
    place("patrol", [("township", {"grid": "G-HHW-01"})], by="worker2", source="patrol")
    return out


def _all_numbers(api: Api, **params: Any) -> set[str]:
    numbers: set[str] = set()
    cursor = None
    while True:
        resp = api.get("/tickets", limit=2, **params, **({"cursor": cursor} if cursor else {}))
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        numbers |= {t["number"] for t in body["items"]}
        cursor = body["next_cursor"]
        if not cursor:
            return numbers


def _expected(user: str, tickets: dict[str, Placed], hotline: Api) -> set[str]:
    seen = set()
    for placed in tickets.values():
        t = hotline.get(f"/tickets/{placed.number}").get_json()
        if user in UNIT_OF:
            visible = t["unit"] in SUBTREE[UNIT_OF[user]]
        else:
            visible = (t["assignee"] == user or t["grid"] in WORKER_GRIDS[user]
                       or placed.created_by == user)
        if visible:
            seen.add(placed.number)
    return seen


def test_the_world_is_as_placed(as_user, tickets) -> None:
    hotline = as_user("hotline")
    where = {k: hotline.get(f"/tickets/{p.number}").get_json() for k, p in tickets.items()}
    assert {k: t["unit"] for k, t in where.items()} == {
        "province": "210000", "city": "210100", "county": "210102", "county2": "210103",
        "township": "210102001", "township2": "210102002", "grid": "210102001001",
        "grid3": "210103005001", "person": "210102001001", "patrol": "210102001001"}
    assert where["grid"]["assignee"] == "worker" and where["grid3"]["assignee"] == "worker3"
    assert where["person"]["assignee"] == "worker"
    assert where["person"]["grid"] not in WORKER_GRIDS["worker"]
    assert where["patrol"]["grid"] == "G-HHW-01"


def test_each_user_sees_exactly_their_scope(as_user, tickets, subtests) -> None:
    hotline = as_user("hotline")
    for user in USERS:
        with subtests.test(user=user):
            api = as_user(user)
            expected = _expected(user, tickets, hotline)
            assert _all_numbers(api) == expected
            for placed in tickets.values():
                status = 200 if placed.number in expected else 404
                assert api.get(f"/tickets/{placed.number}").status_code == status, placed
                assert api.get(f"/tickets/{placed.number}/events").status_code == status, placed


def test_scope_by_level(as_user, tickets) -> None:
    """The rules in words, on the named tickets (the computed test above checks them all)."""
    def sees(user: str, key: str) -> bool:
        return as_user(user).get(f"/tickets/{tickets[key].number}").status_code == 200

    assert all(sees("hotline", k) for k in tickets)
    assert sees("city", "city") and sees("city", "county2") and not sees("city", "province")
    assert sees("county", "county") and sees("county", "grid")
    assert not sees("county", "county2") and not sees("county", "grid3")
    assert not sees("county2", "county") and sees("county2", "grid3")
    assert sees("township", "township") and sees("township", "grid")
    assert not sees("township", "township2") and not sees("township", "county")
    assert not sees("township2", "township")
    assert sees("worker", "grid") and sees("worker", "person")  # in the grid; assigned
    assert sees("backup", "grid") and not sees("backup", "person")  # in the grid only
    assert sees("worker2", "patrol") and not sees("worker2", "grid")  # reported it
    assert not sees("worker3", "grid") and sees("worker3", "grid3")
    assert not sees("contact", "township") and sees("contact", "grid")


def test_unknown_and_out_of_scope_look_the_same(as_user, tickets) -> None:
    county = as_user("county")
    hidden = tickets["county2"].number
    missing = hidden[:-1] + ("0" if hidden[-1] != "0" else "1")
    assert as_user("hotline").get(f"/tickets/{missing}").status_code == 404
    for suffix, body in (("", None), ("/events", None), ("/sign", {}), ("/urge", {"note": "快"}),
                         ("/reveal-reporter", {})):
        answers = []
        for number in (hidden, missing):
            if body is None:
                resp = county.get(f"/tickets/{number}{suffix}")
            else:
                resp = county.post(f"/tickets/{number}{suffix}", body)
            assert resp.status_code == 404, (suffix, resp.get_json())
            error = resp.get_json()
            answers.append((error["code"], sorted(error),
                            error["message"].replace(number, "<n>"),
                            sorted(error.get("details", {}))))
        assert answers[0] == answers[1], suffix


def test_filters_never_widen_scope(as_user, tickets) -> None:
    county = as_user("county")
    hidden = tickets["county2"]
    mine = _all_numbers(county)
    outside = {tickets["county2"].number, tickets["grid3"].number}
    assert not mine & outside
    assert _all_numbers(county, unit="210103") == set()  # a unit outside: nothing, not 422
    assert _all_numbers(county, unit="210103005001") == set()
    assert _all_numbers(county, assignee="worker3") == set()
    assert _all_numbers(county, q=hidden.number) == set()
    assert _all_numbers(county, external_id=hidden.external_id) == set()
    # a grid outside: only tickets the county holds anyway (one of its workers was sent
    # to a problem located there), never the ones held over there
    assert _all_numbers(county, grid="G-BH-01") == {tickets["person"].number}
    # naming an ancestor is not a way up either: the filter only narrows
    assert _all_numbers(county, unit="210000") == mine
    assert _all_numbers(county, unit="210102") == mine
    assert tickets["province"].number not in mine
    worker = as_user("worker")
    assert _all_numbers(worker, unit="210000") == _all_numbers(worker)
    assert _all_numbers(worker, grid="G-BH-01") == {tickets["person"].number}  # assigned
    assert _all_numbers(as_user("worker2"), grid="G-BH-01") == set()
    assert _all_numbers(as_user("worker2"), unit="210000") == {tickets["patrol"].number}
    assert _all_numbers(as_user("worker3"), grid="G-HHW-01") == set()
    # an unknown code is a mistake worth telling
    resp = county.get("/tickets", unit="999999")
    assert resp.status_code == 422 and resp.get_json()["details"]["field"] == "unit"


def test_units_are_scoped_too(as_user) -> None:
    codes = {u["code"] for u in as_user("county").get("/units").get_json()["items"]}
    assert codes == SUBTREE["210102"]
    assert as_user("county").get("/units", parent="210103").get_json()["items"] == []
    codes = {u["code"] for u in as_user("worker").get("/units").get_json()["items"]}
    assert codes == {"210102001001"}


# ---------------------------------------------------------------- reporter data


def _responses_of(api: Api, number: str) -> str:
    """Everything a user can read about a ticket, as one string to search."""
    parts = [api.get(f"/tickets/{number}").get_data(as_text=True),
             api.get(f"/tickets/{number}/events").get_data(as_text=True),
             api.get("/tickets").get_data(as_text=True),
             api.get("/tickets", q=number).get_data(as_text=True)]
    return "\n".join(parts)


def test_reporter_masked_by_default(as_user, walk, subtests) -> None:
    number = walk("assigned")
    for user in ("hotline", "city", "county", "township", "contact", "admin", "worker",
                 "backup"):
        with subtests.test(user=user):
            api = as_user(user)
            reporter = api.get(f"/tickets/{number}").get_json()["reporter"]
            assert reporter == {"anonymous": False, "name": "王**", "phone": "139****5678",
                                "masked": True}
            text = _responses_of(api, number)
            assert PHONE not in text and NAME not in text
            assert PHONE not in json.dumps(api.get("/tickets").get_json(), ensure_ascii=False)


#: On the 'grid' ticket (held by worker): the platform, and the holder who must call back.
REVEAL = {"hotline": 200, "city": 200, "worker": 200, "county": 403, "township": 403,
          "contact": 403, "admin": 403, "backup": 403, "county2": 404, "township2": 404,
          "worker2": 404, "worker3": 404, "township3": 404}


def test_reveal_reporter(app, world, as_user, walk, subtests) -> None:
    number = walk("assigned")  # held by worker, in grid G-HHW-01
    for user, expected in REVEAL.items():
        with subtests.test(user=user, expected=expected):
            _reveal(app, world, as_user, number, user, expected)


def _reveal(app: Any, world: World, as_user: Callable[[str], Api], number: str, user: str,
            expected: int) -> None:
    hotline = as_user("hotline")
    before = hotline.get(f"/tickets/{number}/events").get_json()["items"]
    resp = as_user(user).post(f"/tickets/{number}/reveal-reporter")
    assert resp.status_code == expected, resp.get_json()
    after = hotline.get(f"/tickets/{number}/events").get_json()["items"]
    if expected == 200:
        assert resp.get_json() == {"anonymous": False, "name": NAME, "phone": PHONE,
                                   "masked": False}
        assert len(after) == len(before) + 1
        assert after[-1]["kind"] == "reveal_reporter" and after[-1]["actor"] == user
        assert PHONE not in json.dumps(after[-1], ensure_ascii=False)
        # the look itself is recorded, but the masked view stays masked
        assert as_user(user).get(f"/tickets/{number}").get_json()["reporter"]["masked"] is True
    else:
        assert after == before
        assert PHONE not in resp.get_data(as_text=True)
    _matches_permission(app, world, user, number, expected)


def _matches_permission(app: Any, world: World, user: str, number: str, expected: int) -> None:
    """The route and ``permissions.can_see_reporter`` agree."""
    import sqlalchemy as sa

    from hierarchy.models import User
    from server.core.db import db
    from server.tickets.models import Ticket
    from server.tickets.permissions import can_see_reporter

    if expected == 404:
        return
    with app.app_context():
        actor = db.session.get(User, world.users[user])
        ticket = db.session.execute(sa.select(Ticket).where(Ticket.number == number)).scalar_one()
        assert can_see_reporter(actor, ticket) is (expected == 200)


@pytest.mark.parametrize(("user", "expected"), [
    ("hotline", 200), ("city", 200), ("worker", 403), ("county", 403), ("township", 403),
])
def test_anonymous_reporter_stays_masked(as_user, accept, user, expected) -> None:
    secret = {"name": "李秘密", "phone": "13700001111", "anonymous": True}
    number = accept(reporter=secret)["number"]
    for who, target in (("hotline", {"unit": "210102001"}), ("township", {"grid": "G-HHW-01"})):
        assert as_user(who).post(f"/tickets/{number}/dispatch", target).status_code == 200
    api = as_user(user)
    assert api.get(f"/tickets/{number}").get_json()["reporter"] == {
        "anonymous": True, "name": None, "phone": None, "masked": True}
    assert secret["phone"] not in _responses_of(api, number)
    resp = api.post(f"/tickets/{number}/reveal-reporter")
    assert resp.status_code == expected, resp.get_json()
    if expected == 200:
        assert resp.get_json()["phone"] == secret["phone"]
        assert resp.get_json()["masked"] is False
    else:
        assert secret["phone"] not in resp.get_data(as_text=True)


def test_pages_mask_the_reporter_too(app, world, tickets) -> None:
    client = app.test_client()
    resp = client.post("/api/v1/session", json={"username": "worker", "password": PASSWORD})
    assert resp.status_code == 200
    page = client.get(f"/tickets/{tickets['grid'].number}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert PHONE not in html and NAME not in html and "139****5678" in html
    assert client.get(f"/tickets/{tickets['county2'].number}").status_code == 404
