"""Every action of the ticket flow through the API: who may, in which state, with what effect.

For each action: the allowed path (status and fields change as DESIGN.md says, exactly one
event of the right kind is appended, the version moves by one); every user of the test world
who may not (403 ``forbidden`` when they can see the ticket, 404 when they cannot — and in
both cases nothing changes); and every state the action does not apply to (409
``wrong_state`` carrying the current ticket so the client can redraw without another GET).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Api

ALL_USERS = ("hotline", "city", "county", "county2", "township", "township2", "township3",
             "contact", "worker", "backup", "worker2", "worker3", "admin")

#: Who can see a ticket that sits in village 210102001001, grid G-HHW-01, held by ``worker``.
VILLAGE_VIEWERS = frozenset({"hotline", "city", "county", "township", "contact", "admin",
                             "worker", "backup"})
HOLDER = frozenset({"worker"})
REVIEWERS = frozenset({"hotline", "city", "county", "township"})
STEERING = frozenset({"hotline", "city", "county", "township", "contact"})
FOLLOW_UP = frozenset({"hotline", "city", "county"})

CHECK_IN = {"lng": 123.4306, "lat": 41.7421, "accuracy_m": 8, "fix_age_s": 5}
REPLY = {"result": "已更换灯泡，路灯恢复正常", "resolution": "resolved"}
EXTENSION = {"days": 3, "reason": "需要等待配件到货"}

Snapshot = dict[str, Any]


def snapshot(api: Api, number: str) -> Snapshot:
    """What must not move when an action is refused: the ticket and its event count."""
    ticket = api.get(f"/tickets/{number}")
    assert ticket.status_code == 200, ticket.get_json()
    events = api.get(f"/tickets/{number}/events").get_json()["items"]
    return {"ticket": ticket.get_json(), "events": [e["kind"] for e in events]}


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def ticket_in(walk: Callable[[str], str], as_user: Callable[[str], Api]) -> Callable[[str], str]:
    """A ticket in the named state; 'pending_extension' is in_progress with a request waiting."""

    def _make(state: str) -> str:
        if state == "pending_extension":
            number = walk("in_progress")
            resp = as_user("worker").post(f"/tickets/{number}/request-extension", EXTENSION)
            assert resp.status_code == 200, resp.get_json()
            return number
        return walk(state)

    return _make


# ---------------------------------------------------------------- the permission matrix

#: (action, state the ticket is in, body, status after, who may) — everyone else who can see
#: the ticket gets 403, and whoever cannot see it 404.
MATRIX: list[tuple[str, str, dict[str, Any], str, frozenset[str]]] = [
    ("dispatch", "assigned", {"worker": "backup"}, "assigned", STEERING),
    ("sign", "assigned", {}, "in_progress", HOLDER),
    ("return", "assigned", {"reason": "不属于本网格"}, "assigned", HOLDER),
    ("check-in", "in_progress", CHECK_IN, "on_site", HOLDER),
    ("reply", "on_site", REPLY, "replied", HOLDER),
    ("approve", "replied", {}, "closed", REVIEWERS),
    ("reject", "replied", {"reason": "照片不清楚"}, "in_progress", REVIEWERS),
    ("request-extension", "in_progress", EXTENSION, "in_progress", HOLDER),
    ("decide-extension", "pending_extension", {"approve": True}, "in_progress", REVIEWERS),
    ("urge", "in_progress", {"note": "请尽快处理"}, "in_progress", REVIEWERS),
    ("follow-up", "closed", {"reached": True, "satisfaction": "satisfied"}, "closed", FOLLOW_UP),
    ("reopen", "closed", {"reason": "市民反映仍未修好"}, "assigned", FOLLOW_UP),
]


@pytest.mark.parametrize(("action", "state", "body", "after", "allowed"),
                         [pytest.param(*case, id=case[0]) for case in MATRIX])
def test_who_may_act(ticket_in, as_user, subtests, action, state, body, after, allowed) -> None:
    """Each user of the world in turn; refusals share one ticket since they change nothing."""
    hotline = as_user("hotline")
    refused_on = ticket_in(state)
    for user in ALL_USERS:
        expected = 200 if user in allowed else 403 if user in VILLAGE_VIEWERS else 404
        with subtests.test(user=user, expected=expected):
            number = ticket_in(state) if expected == 200 else refused_on
            before = snapshot(hotline, number)
            resp = as_user(user).post(f"/tickets/{number}/{action}", body)
            assert resp.status_code == expected, resp.get_json()
            now = snapshot(hotline, number)
            if expected == 200:
                result = resp.get_json()
                assert result["status"] == after
                assert result["version"] == before["ticket"]["version"] + 1
                assert now["events"] == [*before["events"], action.replace("-", "_")]
                assert result["event"]["kind"] == action.replace("-", "_")
                assert result["event"]["actor"] == user
                assert now["ticket"]["version"] == result["version"]
                continue
            error = resp.get_json()
            assert error["code"] == ("forbidden" if expected == 403 else "ticket_not_found")
            assert "current" not in error.get("details", {}), "a refusal must not send the ticket"
            assert now == before, "a refused action changed the ticket"


# ---------------------------------------------------------------- wrong state

#: (action, body, states it does not apply to, who tries — someone allowed to in principle).
#: '*' is the holder: the hotline while a fresh ticket sits at the province, else the worker.
#: At the province (the root) the hotline also reviews.
WRONG_STATES: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    ("dispatch", {"unit": "210102001"}, ("replied", "closed"), "hotline"),
    ("sign", {}, ("in_progress", "on_site", "replied", "closed"), "worker"),
    ("return", {"reason": "不属于本网格"}, ("accepted", "on_site", "replied", "closed"), "*"),
    ("check-in", CHECK_IN, ("accepted", "assigned", "replied", "closed"), "*"),
    ("reply", REPLY, ("accepted", "assigned", "replied", "closed"), "*"),
    ("approve", {}, ("accepted", "assigned", "in_progress", "on_site", "closed"), "township"),
    ("reject", {"reason": "照片不清楚"},
     ("accepted", "assigned", "in_progress", "on_site", "closed"), "township"),
    ("request-extension", EXTENSION, ("accepted", "replied", "closed"), "*"),
    ("decide-extension", {"approve": True}, ("closed",), "township"),
    ("urge", {"note": "请尽快处理"}, ("closed",), "township"),
    ("follow-up", {"reached": False},
     ("accepted", "assigned", "in_progress", "on_site", "replied"), "hotline"),
    ("reopen", {"reason": "市民反映仍未修好"},
     ("accepted", "assigned", "in_progress", "on_site", "replied"), "hotline"),
]


@pytest.mark.parametrize(("action", "body", "states", "who"),
                         [pytest.param(*case, id=case[0]) for case in WRONG_STATES])
def test_wrong_state(ticket_in, as_user, subtests, action, body, states, who) -> None:
    hotline = as_user("hotline")
    for state in states:
        actor = who
        if state == "accepted" and who in ("*", "township"):
            actor = "hotline"
        elif who == "*":
            actor = "worker"
        with subtests.test(state=state, actor=actor):
            number = ticket_in(state)
            before = snapshot(hotline, number)
            resp = as_user(actor).post(f"/tickets/{number}/{action}", body)
            error = resp.get_json()
            assert resp.status_code == 409, error
            assert error["code"] == "wrong_state"
            assert error["details"]["status"] == state
            current = error["details"]["current"]
            assert current["number"] == number
            assert current["status"] == state
            assert current["version"] == before["ticket"]["version"]
            assert snapshot(hotline, number) == before


# ---------------------------------------------------------------- each action's effect


def _act(api: Api, number: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = api.post(f"/tickets/{number}/{action}", body or {})
    assert resp.status_code == 200, (action, resp.get_json())
    return resp.get_json()


def _events(api: Api, number: str) -> list[dict[str, Any]]:
    return api.get(f"/tickets/{number}/events").get_json()["items"]


def test_accept(as_user, accept) -> None:
    t = accept()
    assert t["status"] == "accepted" and t["unit"] == "210000" and t["version"] == 1
    assert t["response_due"] and t["handling_due"] and t["assignee"] is None
    assert [e["kind"] for e in _events(as_user("hotline"), t["number"])] == ["accept"]


@pytest.mark.parametrize(("user", "source", "expected"), [
    ("hotline", "hotline", 201), ("city", "api", 201), ("county", "web", 201),
    ("township", "hotline", 201), ("contact", "app", 201), ("worker", "patrol", 201),
    ("worker", "hotline", 403), ("admin", "hotline", 403), ("admin", "patrol", 403),
])
def test_who_may_accept(as_user, user, source, expected) -> None:
    from tests.conftest import ACCEPT_BODY

    api = as_user(user)
    before = api.get("/tickets").get_json()["items"]
    resp = api.post("/tickets", {**ACCEPT_BODY, "source": source})
    assert resp.status_code == expected, resp.get_json()
    after = api.get("/tickets").get_json()["items"]
    if expected == 201:
        assert resp.get_json()["unit"] == after[0]["unit"]
        assert len(after) == len(before) + 1
    else:
        assert resp.get_json()["code"] == "forbidden"
        assert after == before


def test_dispatch_to_unit(as_user, accept) -> None:
    number = accept()["number"]
    t = _act(as_user("hotline"), number, "dispatch", {"unit": "210102", "note": "请和平区处理"})
    assert t["status"] == "assigned" and t["unit"] == "210102" and t["assignee"] is None
    assert t["version"] == 2
    assert t["event"]["kind"] == "dispatch"
    assert t["event"]["data"]["unit"] == "210102"
    assert t["event"]["data"]["note"] == "请和平区处理"
    assert t["event"]["data"]["from"]["unit"] == "210000"


def test_dispatch_to_grid_gives_its_on_duty_worker(as_user, accept) -> None:
    number = accept()["number"]
    _act(as_user("hotline"), number, "dispatch", {"unit": "210102001"})
    t = _act(as_user("township"), number, "dispatch", {"grid": "G-HHW-01"})
    assert t["grid"] == "G-HHW-01" and t["unit"] == "210102001001"
    assert t["assignee"] == "worker" and t["status"] == "assigned"
    assert t["event"]["data"]["grid"] == "G-HHW-01" and t["event"]["data"]["worker"] == "worker"


def test_dispatch_to_worker(as_user, accept) -> None:
    accepted = accept()
    number = accepted["number"]
    _act(as_user("hotline"), number, "dispatch", {"unit": "210102001"})
    t = _act(as_user("township"), number, "dispatch", {"worker": "worker2"})
    assert t["assignee"] == "worker2" and t["unit"] == "210102001002"
    assert t["grid"] == accepted["grid"], "the grid is where the problem is; a person moves it not"
    assert t["event"]["data"]["worker"] == "worker2"


def test_dispatch_outside_jurisdiction(as_user, walk) -> None:
    """A unit may send work only into its own subtree, even a unit it can name."""
    number = walk("assigned")
    township = as_user("township")
    before = snapshot(as_user("hotline"), number)
    for target in ({"unit": "210103"}, {"unit": "210102002"}, {"grid": "G-BH-01"},
                   {"worker": "worker3"}):
        resp = township.post(f"/tickets/{number}/dispatch", target)
        assert resp.status_code == 422, (target, resp.get_json())
        assert resp.get_json()["code"] == "target_out_of_scope"
    assert snapshot(as_user("hotline"), number) == before


@pytest.mark.parametrize(("target", "code"), [
    ({"unit": "999999"}, "unknown_unit"), ({"grid": "G-NONE"}, "unknown_grid"),
    ({"worker": "nobody"}, "unknown_worker"), ({"worker": "township2"}, "unknown_worker"),
    ({"unit": "210102", "grid": "G-HHW-01"}, "invalid_input"), ({}, "invalid_input"),
])
def test_dispatch_bad_target(as_user, accept, target, code) -> None:
    number = accept()["number"]
    resp = as_user("hotline").post(f"/tickets/{number}/dispatch", target)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == code


def test_dispatch_to_where_it_already_is(as_user, accept) -> None:
    number = accept()["number"]
    hotline = as_user("hotline")
    _act(hotline, number, "dispatch", {"unit": "210102"})
    resp = hotline.post(f"/tickets/{number}/dispatch", {"unit": "210102"})
    assert resp.status_code == 409 and resp.get_json()["code"] == "already_there"
    assert resp.get_json()["details"]["current"]["unit"] == "210102"


def test_sign(as_user, walk) -> None:
    number = walk("assigned")
    t = _act(as_user("worker"), number, "sign")
    assert t["status"] == "in_progress" and t["signed_at"] and t["assignee"] == "worker"
    assert t["response_state"] is None
    assert t["event"]["data"]["late"] is False


def test_return_goes_back_to_the_dispatching_unit(as_user, walk) -> None:
    number = walk("assigned")  # hotline → county → township → grid worker
    t = _act(as_user("worker"), number, "return", {"reason": "地址不在本网格"})
    assert t["status"] == "assigned" and t["unit"] == "210102001" and t["assignee"] is None
    assert t["event"]["data"]["reason"] == "地址不在本网格"
    assert t["event"]["data"]["to"] == "210102001"
    assert t["event"]["data"]["from"] == {"unit": "210102001001", "assignee": "worker"}
    # and up again: the township returns it to the county that sent it there
    t = _act(as_user("township"), number, "return", {"reason": "应由区直部门办理"})
    assert t["unit"] == "210102" and t["assignee"] is None


def test_return_skipping_levels_goes_to_the_dispatcher(as_user, accept) -> None:
    """The hotline sent it straight to a township: a return goes to the hotline, not the county."""
    number = accept()["number"]
    _act(as_user("hotline"), number, "dispatch", {"unit": "210102001"})
    t = _act(as_user("township"), number, "return", {"reason": "不属于本街道"})
    assert t["unit"] == "210000" and t["status"] == "assigned"


def test_a_second_return_follows_the_history_not_the_tree(as_user, accept) -> None:
    """The city skipped the county: after the worker's return, the township's goes to the city."""
    number = accept()["number"]
    _act(as_user("hotline"), number, "dispatch", {"unit": "210100"})
    _act(as_user("city"), number, "dispatch", {"unit": "210102001"})
    _act(as_user("township"), number, "dispatch", {"grid": "G-HHW-01"})
    t = _act(as_user("worker"), number, "return", {"reason": "地址不在本网格"})
    assert t["unit"] == "210102001"
    t = _act(as_user("township"), number, "return", {"reason": "不属于本街道"})
    assert t["unit"] == "210100"  # the city that sent it, not the county above the township
    t = _act(as_user("city"), number, "return", {"reason": "需省级平台协调"})
    assert t["unit"] == "210000"


def test_return_by_a_unit_that_took_the_ticket_itself_goes_up(as_user, walk) -> None:
    """The county pulls a ticket up to its own desk; returning it must go up, never back down."""
    number = walk("assigned")
    county = as_user("county")
    t = _act(county, number, "dispatch", {"unit": "210102"})
    assert t["unit"] == "210102" and t["assignee"] is None
    t = _act(county, number, "return", {"reason": "应由市级部门办理"})
    assert t["unit"] in ("210100", "210000"), t["unit"]


def test_return_within_a_village_goes_back_to_its_desk(as_user, walk) -> None:
    """A contact who gave a ticket to a worker of the same village gets it back."""
    number = walk("assigned")
    _act(as_user("township"), number, "dispatch", {"unit": "210102001001"})
    _act(as_user("contact"), number, "dispatch", {"worker": "backup"})
    t = _act(as_user("backup"), number, "return", {"reason": "我今天不在岗"})
    assert t["unit"] == "210102001001" and t["assignee"] is None


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": " "}, {"reason": "x" * 501}])
def test_return_needs_a_reason(as_user, walk, body) -> None:
    number = walk("assigned")
    before = snapshot(as_user("hotline"), number)
    resp = as_user("worker").post(f"/tickets/{number}/return", body)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == "invalid_input"
    assert snapshot(as_user("hotline"), number) == before


def test_return_from_the_root_has_nowhere_to_go(as_user, accept) -> None:
    number = accept()["number"]
    _act(as_user("hotline"), number, "dispatch", {"worker": "worker"})
    _act(as_user("worker"), number, "sign")
    # worker returns to the province (the dispatcher); the province cannot return further
    _act(as_user("worker"), number, "return", {"reason": "不归我管"})
    resp = as_user("hotline").post(f"/tickets/{number}/return", {"reason": "无处退回"})
    assert resp.status_code == 409 and resp.get_json()["code"] == "nowhere_to_return"


def test_check_in(as_user, walk) -> None:
    number = walk("in_progress")
    t = _act(as_user("worker"), number, "check-in", CHECK_IN)
    assert t["status"] == "on_site" and t["checked_in_at"]
    data = t["event"]["data"]
    assert data["lng"] == pytest.approx(123.4306) and data["accuracy_m"] == 8
    assert 0 < data["distance_m"] < 50


def test_check_in_converts_gcj02(as_user, walk) -> None:
    """A phone on a Chinese web map sends GCJ-02: the server converts it back to WGS-84."""
    from grids.crs import wgs84_to_gcj02

    number = walk("in_progress")
    lng, lat = wgs84_to_gcj02(CHECK_IN["lng"], CHECK_IN["lat"])
    assert abs(lng - CHECK_IN["lng"]) > 1e-3  # GCJ-02 is offset by hundreds of metres
    t = _act(as_user("worker"), number, "check-in", {**CHECK_IN, "lng": lng, "lat": lat,
                                                     "crs": "gcj02"})
    assert t["event"]["data"]["lng"] == pytest.approx(123.4306, abs=1e-5)
    assert t["event"]["data"]["distance_m"] < 50


def test_reply_with_photos(as_user, walk, client) -> None:
    number = walk("on_site")
    worker = as_user("worker")
    up = client.post(f"/api/v1/tickets/{number}/photos", headers=worker.headers(),
                     data={"file": (io.BytesIO(jpeg()), "p.jpg")},
                     content_type="multipart/form-data")
    assert up.status_code == 201, up.get_json()
    photo = up.get_json()["id"]
    t = _act(worker, number, "reply", {**REPLY, "photos": [photo, photo]})
    assert t["status"] == "replied" and t["replied_at"]
    assert t["reply"] == {"result": REPLY["result"], "resolution": "resolved"}
    assert t["event"]["data"]["photos"] == [photo]
    kinds = [e["kind"] for e in _events(worker, number)]
    assert kinds[-2:] == ["photo", "reply"]


def test_reply_straight_from_in_progress(as_user, walk) -> None:
    """Check-in is evidence, not a gate: a phone call can settle a consultation."""
    number = walk("in_progress")
    t = _act(as_user("worker"), number, "reply", {**REPLY, "resolution": "explained"})
    assert t["status"] == "replied" and t["reply"]["resolution"] == "explained"


def test_reply_with_an_unknown_photo(as_user, walk) -> None:
    number = walk("on_site")
    resp = as_user("worker").post(f"/tickets/{number}/reply",
                                  {**REPLY, "photos": ["0e1b7a4e-0000-4000-8000-000000000000"]})
    assert resp.status_code == 422 and resp.get_json()["code"] == "unknown_photo"


def test_approve(as_user, walk) -> None:
    number = walk("replied")
    t = _act(as_user("township"), number, "approve")
    assert t["status"] == "closed" and t["closed_at"]
    assert t["handling_state"] is None and t["event"]["data"]["late"] is False


def test_reject(as_user, walk) -> None:
    number = walk("replied")
    t = _act(as_user("township"), number, "reject", {"reason": "照片看不出已修好"})
    assert t["status"] == "in_progress" and t["assignee"] == "worker"
    assert t["event"]["data"]["reason"] == "照片看不出已修好"
    # the worker can reply again
    assert _act(as_user("worker"), number, "reply", REPLY)["status"] == "replied"


def test_reject_needs_a_reason(as_user, walk) -> None:
    number = walk("replied")
    resp = as_user("township").post(f"/tickets/{number}/reject", {})
    assert resp.status_code == 422


def test_request_extension(as_user, walk) -> None:
    number = walk("in_progress")
    t = _act(as_user("worker"), number, "request-extension", EXTENSION)
    assert t["extension"] == {"pending_days": 3, "reason": EXTENSION["reason"], "granted": 0}
    assert EXTENSION.items() <= t["event"]["data"].items()


def test_extension_pending_twice(as_user, ticket_in) -> None:
    number = ticket_in("pending_extension")
    before = snapshot(as_user("hotline"), number)
    resp = as_user("worker").post(f"/tickets/{number}/request-extension", EXTENSION)
    assert resp.status_code == 409, resp.get_json()
    assert resp.get_json()["code"] == "extension_pending"
    assert resp.get_json()["details"]["current"]["extension"]["pending_days"] == 3
    assert snapshot(as_user("hotline"), number) == before


@pytest.mark.parametrize("days", [0, 11, -1, "x"])
def test_extension_days_bounds(as_user, walk, days) -> None:
    number = walk("in_progress")
    resp = as_user("worker").post(f"/tickets/{number}/request-extension",
                                  {**EXTENSION, "days": days})
    assert resp.status_code == 422


def test_decide_extension_approve(as_user, ticket_in) -> None:
    number = ticket_in("pending_extension")
    old = as_user("hotline").get(f"/tickets/{number}").get_json()["handling_due"]
    t = _act(as_user("township"), number, "decide-extension", {"approve": True, "days": 2})
    assert t["extension"] == {"pending_days": None, "reason": None, "granted": 1}
    assert datetime.fromisoformat(t["handling_due"]) > datetime.fromisoformat(old)
    data = t["event"]["data"]
    assert data["approve"] is True and data["days"] == 2 and data["requested"] == 3
    assert data["from"] == old and data["handling_due"] == t["handling_due"]


def test_decide_extension_refuse(as_user, ticket_in) -> None:
    number = ticket_in("pending_extension")
    old = as_user("hotline").get(f"/tickets/{number}").get_json()["handling_due"]
    t = _act(as_user("township"), number, "decide-extension", {"approve": False})
    assert t["handling_due"] == old
    assert t["extension"] == {"pending_days": None, "reason": None, "granted": 0}
    assert {"approve": False, "requested": 3}.items() <= t["event"]["data"].items()
    assert "days" not in t["event"]["data"]
    # and the worker may ask again
    _act(as_user("worker"), number, "request-extension", EXTENSION)


def test_decide_extension_more_than_asked(as_user, ticket_in) -> None:
    number = ticket_in("pending_extension")
    resp = as_user("township").post(f"/tickets/{number}/decide-extension",
                                    {"approve": True, "days": 5})
    assert resp.status_code == 422


def test_decide_with_no_request(as_user, walk) -> None:
    number = walk("in_progress")
    before = snapshot(as_user("hotline"), number)
    resp = as_user("township").post(f"/tickets/{number}/decide-extension", {"approve": True})
    assert resp.status_code == 409, resp.get_json()
    assert resp.get_json()["code"] == "no_extension_pending"
    assert resp.get_json()["details"]["current"]["number"] == number
    assert snapshot(as_user("hotline"), number) == before


def test_urge(as_user, walk) -> None:
    number = walk("in_progress")
    t = _act(as_user("county"), number, "urge", {"note": "今天下班前处理完"})
    assert t["urge_count"] == 1 and t["status"] == "in_progress"
    assert {"note": "今天下班前处理完", "count": 1, "assignee": "worker"}.items() \
        <= t["event"]["data"].items()
    t = _act(as_user("township"), number, "urge", {"note": "再催一次"})
    assert t["urge_count"] == 2


def test_follow_up(as_user, walk) -> None:
    number = walk("closed")
    t = _act(as_user("hotline"), number, "follow-up",
             {"reached": True, "satisfaction": "basic", "comment": "还行"})
    assert t["status"] == "closed"
    assert t["follow_up"]["reached"] is True and t["follow_up"]["satisfaction"] == "basic"
    assert t["follow_up"]["comment"] == "还行" and t["follow_up"]["at"]


def test_follow_up_not_reached(as_user, walk) -> None:
    number = walk("closed")
    t = _act(as_user("county"), number, "follow-up", {"reached": False})
    assert t["follow_up"]["reached"] is False and t["follow_up"]["satisfaction"] is None


@pytest.mark.parametrize("body", [
    {"reached": True}, {"reached": True, "satisfaction": None},
    {"reached": True, "satisfaction": "meh"}, {},
])
def test_follow_up_requires_satisfaction_when_reached(as_user, walk, body) -> None:
    number = walk("closed")
    before = snapshot(as_user("hotline"), number)
    resp = as_user("hotline").post(f"/tickets/{number}/follow-up", body)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == "invalid_input"
    assert snapshot(as_user("hotline"), number) == before


def test_reopen_starts_a_new_cycle(as_user, walk) -> None:
    number = walk("closed")
    hotline = as_user("hotline")
    _act(hotline, number, "follow-up", {"reached": True, "satisfaction": "unsatisfied"})
    old = hotline.get(f"/tickets/{number}").get_json()
    t = _act(hotline, number, "reopen", {"reason": "市民反映仍未修好"})
    assert t["status"] == "assigned" and t["reopen_count"] == 1
    assert t["assignee"] == "worker" and t["unit"] == old["unit"]
    for field in ("signed_at", "checked_in_at", "replied_at", "closed_at", "reply", "follow_up"):
        assert t[field] is None, field
    # Counted afresh from the reopen: never earlier. (Not strictly later: outside working
    # hours — this failed on a Friday night in Shanghai — working-day deadlines computed
    # seconds apart end at the same close of business.)
    assert datetime.fromisoformat(t["response_due"]) >= datetime.fromisoformat(old["response_due"])
    assert datetime.fromisoformat(t["handling_due"]) >= datetime.fromisoformat(old["handling_due"])
    assert t["event"]["data"]["cycle"] == 2
    # the second cycle runs like the first
    worker = as_user("worker")
    _act(worker, number, "sign")
    _act(worker, number, "reply", REPLY)
    assert _act(as_user("township"), number, "approve")["status"] == "closed"


def test_reopen_needs_a_reason(as_user, walk) -> None:
    number = walk("closed")
    assert as_user("hotline").post(f"/tickets/{number}/reopen", {}).status_code == 422


# ---------------------------------------------------------------- base_version


def test_stale_version_because_someone_else_acted(as_user, walk) -> None:
    number = walk("in_progress")
    worker = as_user("worker")
    seen = worker.get(f"/tickets/{number}").get_json()["version"]
    _act(as_user("county"), number, "urge", {"note": "快"})
    before = snapshot(as_user("hotline"), number)
    resp = worker.post(f"/tickets/{number}/check-in", {**CHECK_IN, "base_version": seen})
    error = resp.get_json()
    assert resp.status_code == 409, error
    assert error["code"] == "stale_version"
    assert error["details"]["version"] == seen + 1
    assert error["details"]["current"]["version"] == seen + 1
    assert error["details"]["current"]["urge_count"] == 1
    assert snapshot(as_user("hotline"), number) == before


def test_own_later_actions_are_not_stale(as_user, walk, client) -> None:
    """A phone replays its offline queue, each item made against the version it saw."""
    number = walk("in_progress")
    worker = as_user("worker")
    seen = worker.get(f"/tickets/{number}").get_json()["version"]
    _act(worker, number, "check-in", {**CHECK_IN, "base_version": seen})
    up = client.post(f"/api/v1/tickets/{number}/photos", headers=worker.headers(),
                     data={"file": (io.BytesIO(jpeg()), "p.jpg")},
                     content_type="multipart/form-data")
    assert up.status_code == 201
    t = _act(worker, number, "reply", {**REPLY, "base_version": seen,
                                        "photos": [up.get_json()["id"]]})
    assert t["status"] == "replied" and t["version"] == seen + 3


def test_a_look_is_not_a_change(as_user, walk) -> None:
    """Revealing the reporter is audited but does not make anyone's view stale."""
    number = walk("in_progress")
    worker = as_user("worker")
    seen = worker.get(f"/tickets/{number}").get_json()["version"]
    assert as_user("hotline").post(f"/tickets/{number}/reveal-reporter").status_code == 200
    t = _act(worker, number, "check-in", {**CHECK_IN, "base_version": seen})
    assert t["status"] == "on_site"


def test_current_version_is_fine(as_user, walk) -> None:
    number = walk("in_progress")
    seen = as_user("county").get(f"/tickets/{number}").get_json()["version"]
    assert _act(as_user("county"), number, "urge", {"note": "快", "base_version": seen})


@pytest.mark.parametrize(("offset", "status", "code"), [
    (1, 422, "invalid_version"), (10**6, 422, "invalid_version"),
])
def test_base_version_from_the_future(as_user, walk, offset, status, code) -> None:
    number = walk("in_progress")
    seen = as_user("worker").get(f"/tickets/{number}").get_json()["version"]
    resp = as_user("worker").post(f"/tickets/{number}/check-in",
                                  {**CHECK_IN, "base_version": seen + offset})
    assert resp.status_code == status and resp.get_json()["code"] == code


def test_stale_is_checked_after_permission(as_user, walk) -> None:
    """A stale version must not tell an actor without rights what the ticket looks like."""
    number = walk("in_progress")
    _act(as_user("county"), number, "urge", {"note": "快"})
    resp = as_user("backup").post(f"/tickets/{number}/check-in", {**CHECK_IN, "base_version": 1})
    assert resp.status_code == 403 and "details" not in resp.get_json()


# ---------------------------------------------------------------- idempotent replays


def test_a_replayed_action_changes_nothing(as_user, walk) -> None:
    number = walk("assigned")
    worker = as_user("worker")
    first = worker.post(f"/tickets/{number}/sign", {}, key="tap-1")
    assert first.status_code == 200
    before = snapshot(as_user("hotline"), number)
    again = worker.post(f"/tickets/{number}/sign", {}, key="tap-1")
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert snapshot(as_user("hotline"), number) == before


def test_a_failed_action_can_be_retried_with_its_key(as_user, walk) -> None:
    number = walk("assigned")
    worker = as_user("worker")
    assert worker.post(f"/tickets/{number}/check-in", CHECK_IN, key="k").status_code == 409
    assert worker.post(f"/tickets/{number}/sign", {}, key="k2").status_code == 200
    resp = worker.post(f"/tickets/{number}/check-in", CHECK_IN, key="k")
    assert resp.status_code == 200 and resp.get_json()["status"] == "on_site"
