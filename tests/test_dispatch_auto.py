"""Auto-dispatch on accept: a ticket matched to a grid lands with its on-duty worker at once.

The rest of the suite runs with ``YIHAO_AUTO_DISPATCH`` off so that the flow tests can walk
every desk; here it is on, as in the demo and a default deployment.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa


@pytest.fixture(autouse=True)
def _auto(app) -> None:  # type: ignore[no-untyped-def]
    app.config["YIHAO_AUTO_DISPATCH"] = True


def _events(as_user, number: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    body = as_user("hotline").get(f"/tickets/{number}/events").get_json()
    return body["items"] if isinstance(body, dict) else body


def _set_duty(app, world, username: str, on_duty: bool) -> None:  # type: ignore[no-untyped-def]
    from grids.models import GridMember
    from server.core.db import db

    with app.app_context():
        db.session.execute(sa.update(GridMember).where(
            GridMember.user_id == world.users[username]).values(on_duty=on_duty))
        db.session.commit()


def test_a_ticket_matched_to_a_grid_goes_to_its_on_duty_worker(as_user, accept) -> None:
    t = accept()
    assert t["grid"] == "G-HHW-01"
    assert t["status"] == "assigned"
    assert t["unit"] == "210102001001"
    ticket = as_user("worker").get(f"/tickets/{t['number']}").get_json()
    assert ticket["assignee"] == "worker"
    events = _events(as_user, t["number"])
    assert [e["kind"] for e in events] == ["accept", "dispatch"]
    assert events[1]["data"]["auto"] is True and events[1]["data"]["worker"] == "worker"
    # The worker can take it from there: sign straight away.
    assert as_user("worker").post(f"/tickets/{t['number']}/sign").status_code == 200


def test_an_auto_dispatched_accept_writes_each_row_once(app, as_user) -> None:  # type: ignore[no-untyped-def]
    """The accept and its auto-dispatch go to the database as one flush of final rows: the
    ticket inserted once and never updated, its clocks and event head never read back
    (bench/intake.py: 26 statements before, 13 now on PostgreSQL)."""
    import re
    import uuid

    from tests.conftest import ACCEPT_BODY, count_queries

    api = as_user("hotline")
    api.post("/tickets", {**ACCEPT_BODY, "external_id": uuid.uuid4().hex})  # warm-up
    with count_queries(app) as seen:
        resp = api.post("/tickets", {**ACCEPT_BODY, "external_id": uuid.uuid4().hex})
    assert resp.status_code == 201 and resp.get_json()["status"] == "assigned"
    flat = [" ".join(s.split()) for s in seen]

    def count(pattern: str) -> int:
        return sum(1 for s in flat if re.match(pattern, s))

    assert count(r"INSERT INTO tickets\b") == 1
    # (The older ticket it duplicates gets its counter raised; that is another row.)
    own_updates = count(r"UPDATE tickets SET (?!duplicate_count=)")
    with app.app_context():
        from server.core.db import db

        sqlite = db.engine.dialect.name == "sqlite"
    # SQLite gives the id only by inserting, so the number and the routing follow as one
    # UPDATE; PostgreSQL takes the id from the sequence first and inserts the final row.
    assert own_updates == (1 if sqlite else 0)
    assert count(r"SELECT .* FROM clocks\b") == 0
    assert count(r"UPDATE clocks\b") == 0
    assert count(r"SELECT .* FROM event_heads\b") == 0
    assert count(r"(INSERT INTO|UPDATE) event_heads\b") == 1
    # Sign (stopped), reply, sign; accept and dispatch: one statement each on PostgreSQL
    # (insertmanyvalues), a row at a time on SQLite.
    assert count(r"INSERT INTO clocks\b") == (3 if sqlite else 1)
    assert count(r"INSERT INTO events\b") == (2 if sqlite else 1)
    events = _events(as_user, resp.get_json()["number"])
    assert [(e["kind"], e["seq"]) for e in events] == [("accept", 1), ("dispatch", 2)]
    assert events[1]["prev_hash"] == events[0]["hash"]


def test_the_backup_gets_it_when_the_primary_is_off_duty(app, world, as_user, accept) -> None:
    _set_duty(app, world, "worker", False)
    t = accept()
    events = _events(as_user, t["number"])
    assert events[-1]["data"]["worker"] == "backup"


def test_with_nobody_on_duty_it_stops_at_the_village_contact_point(app, world, as_user, accept) -> None:
    _set_duty(app, world, "worker", False)
    _set_duty(app, world, "backup", False)
    t = accept()
    assert t["status"] == "assigned" and t["unit"] == "210102001001"
    events = _events(as_user, t["number"])
    assert events[-1]["data"]["worker"] is None
    # The contact point sees it in their queue and may dispatch it on.
    listed = as_user("contact").get("/tickets").get_json()
    assert t["number"] in [i["number"] for i in listed["items"]]


def test_without_a_grid_it_stays_with_the_accepting_desk(as_user, accept) -> None:
    t = accept(location=None, address="沈阳市沈河区某条不存在的小路")
    assert t["grid"] is None
    assert t["status"] == "accepted"
    assert [e["kind"] for e in _events(as_user, t["number"])] == ["accept"]


def test_a_patrol_report_in_the_workers_own_grid_stays_with_them(as_user, accept) -> None:
    t = accept(by="worker2", source="patrol", type="report", reporter=None,
               address="沈阳市和平区浑河湾街道长白岛社区", location=None)
    assert t["grid"] == "G-CBD-01" and t["status"] == "assigned"
    events = _events(as_user, t["number"])
    assert events[-1]["data"]["worker"] == "worker2"


def test_a_return_after_auto_dispatch_goes_back_to_the_accepting_desk(as_user, accept) -> None:
    t = accept()
    worker = as_user("worker")
    assert worker.post(f"/tickets/{t['number']}/sign").status_code == 200
    resp = worker.post(f"/tickets/{t['number']}/return", {"reason": "不在本网格，位置在河对岸"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["unit"] == "210000"


def test_off_by_configuration(app, as_user, accept) -> None:
    app.config["YIHAO_AUTO_DISPATCH"] = False
    t = accept()
    assert t["status"] == "accepted" and t["grid"] == "G-HHW-01"


# ---------------------------------------------------------------- location correction


def test_correcting_the_location_before_signing_sends_it_to_the_new_grid(as_user, accept) -> None:
    t = accept()
    assert t["grid"] == "G-HHW-01"
    resp = as_user("hotline").post(f"/tickets/{t['number']}/correct-location", {
        "address": "沈阳市和平区浑河湾街道长白岛社区", "reason": "来电人更正了地址"})
    assert resp.status_code == 200, resp.get_json()
    ticket = resp.get_json()
    assert ticket["grid"] == "G-CBD-01" and ticket["assignee"] == "worker2"
    events = _events(as_user, t["number"])
    assert [e["kind"] for e in events] == ["accept", "dispatch", "correct_location", "dispatch"]
    correction = events[2]["data"]
    assert correction["from"]["grid"] == "G-HHW-01" and correction["grid_changed"] is True
    assert events[3]["data"]["auto"] is True


def test_after_signing_the_grid_is_corrected_but_the_holder_keeps_it(as_user, accept) -> None:
    t = accept()
    worker = as_user("worker")
    assert worker.post(f"/tickets/{t['number']}/sign").status_code == 200
    resp = worker.post(f"/tickets/{t['number']}/correct-location", {
        "address": "沈阳市和平区浑河湾街道长白岛社区", "reason": "现场核实位置在长白岛"})
    assert resp.status_code == 200, resp.get_json()
    ticket = resp.get_json()
    assert ticket["grid"] == "G-CBD-01" and ticket["assignee"] == "worker"
    assert ticket["status"] == "in_progress"


def test_a_point_correction_is_converted_and_kept(as_user, accept) -> None:
    t = accept()
    resp = as_user("hotline").post(f"/tickets/{t['number']}/correct-location", {
        "location": {"lng": 123.4311, "lat": 41.7425, "crs": "wgs84"}, "reason": "地图上重新定位"})
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["event"]["data"]
    assert data["lng"] == pytest.approx(123.4311) and data["from"]["lng"] == pytest.approx(123.4305)


def test_a_correction_needs_a_place_and_a_reason(as_user, accept) -> None:
    t = accept()
    hotline = as_user("hotline")
    assert hotline.post(f"/tickets/{t['number']}/correct-location",
                        {"reason": "没有新位置"}).status_code == 422
    assert hotline.post(f"/tickets/{t['number']}/correct-location",
                        {"address": "长白岛社区"}).status_code == 422
