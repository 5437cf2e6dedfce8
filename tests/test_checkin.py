"""GPS check-in rules (grids/checkin.py) and the check-in action that applies them.

The rules themselves are tested as a pure function; the action is tested through the API for
what matters to the worker and the station: a refused attempt answers 422 ``checkin_refused``
but is committed (row and event), a reason turns it into an accepted warning, and the grid's
polygon counts as "at the problem" as well as the distance to the ticket's point.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, box

from grids.checkin import ACCEPTED, REFUSED, WARNING, CheckInRules, judge_check_in
from grids.crs import haversine_m

TICKET = (123.4305, 41.7420)  # the accept fixture's point
NEAR = (123.4306, 41.7421)    # about 14 m away
FAR = (123.4405, 41.7420)     # about 830 m east


def judge(point: tuple[float, float] = NEAR, **kw: Any):  # type: ignore[no-untyped-def]
    args: dict[str, Any] = {"accuracy_m": 8.0, "fix_age_s": 5.0, "reason": None,
                            "ticket_point": TICKET, "grid_geom": None}
    args.update(kw)
    return judge_check_in(point, **args)


def test_distances_of_the_fixtures() -> None:
    assert haversine_m(*NEAR, *TICKET) < 20
    assert 700 < haversine_m(*FAR, *TICKET) < 900


@pytest.mark.parametrize(("accuracy", "verdict", "flag"), [
    (5.0, ACCEPTED, None),
    (20.0, ACCEPTED, None),
    (35.0, ACCEPTED, "accuracy_fair"),
    (50.0, ACCEPTED, "accuracy_fair"),
    (50.5, WARNING, "accuracy_poor"),
    (100.0, WARNING, "accuracy_poor"),
    (100.5, REFUSED, "accuracy_too_poor"),
    (0.0, WARNING, "zero_accuracy"),
    (None, WARNING, "accuracy_unknown"),
])
def test_accuracy_thresholds(accuracy: float | None, verdict: str, flag: str | None) -> None:
    v = judge(accuracy_m=accuracy)
    assert v.verdict == verdict
    if flag:
        assert flag in v.flags
    else:
        assert not [f for f in v.flags if f.startswith("accuracy")]


@pytest.mark.parametrize(("age", "verdict"), [(0.0, ACCEPTED), (120.0, ACCEPTED), (121.0, REFUSED),
                                              (3600.0, REFUSED)])
def test_fix_age(age: float, verdict: str) -> None:
    v = judge(fix_age_s=age)
    assert v.verdict == verdict
    assert ("fix_too_old" in v.flags) == (verdict == REFUSED)


def test_far_from_the_ticket_is_refused_unless_inside_its_grid() -> None:
    v = judge(FAR)
    assert v.verdict == REFUSED and "outside_area" in v.flags and v.distance_m > 700
    grid = MultiPolygon([box(FAR[0] - 0.001, FAR[1] - 0.001, FAR[0] + 0.001, FAR[1] + 0.001)])
    inside = judge(FAR, grid_geom=grid)
    assert inside.verdict == ACCEPTED and inside.inside_grid is True


def test_a_point_on_the_grid_edge_counts_as_inside() -> None:
    grid = MultiPolygon([box(FAR[0], FAR[1], FAR[0] + 0.01, FAR[1] + 0.01)])
    assert judge(FAR, grid_geom=grid).inside_grid is True


def test_a_reason_turns_a_refusal_into_a_warning_and_says_so() -> None:
    v = judge(FAR, fix_age_s=600.0, reason="桥下没有信号，用的是桥头的定位")
    assert v.verdict == WARNING
    assert {"outside_area", "fix_too_old", "overridden"} <= set(v.flags)
    assert any("桥下没有信号" in m for m in v.messages)


def test_no_location_and_no_grid_cannot_be_checked_but_is_not_refused() -> None:
    v = judge(ticket_point=None, grid_geom=None)
    assert v.verdict == WARNING and v.flags == ["no_location"]


def test_rules_from_config() -> None:
    rules = CheckInRules.from_config({"YIHAO_CHECKIN_MAX_DISTANCE_M": "1000",
                                      "YIHAO_CHECKIN_MAX_FIX_AGE_S": ""})
    assert rules.max_distance_m == 1000 and rules.max_fix_age_s == 120
    assert judge(FAR, rules=rules).verdict == ACCEPTED


# ---------------------------------------------------------------- through the API


def _check_in(as_user, number: str, point: tuple[float, float], **extra: Any):  # type: ignore[no-untyped-def]
    body = {"lng": point[0], "lat": point[1], "accuracy_m": 8, "fix_age_s": 5, **extra}
    return as_user("worker").post(f"/tickets/{number}/check-in", body)


def _rows(app, number: str) -> list[Any]:  # type: ignore[no-untyped-def]
    from server.core.db import db
    from server.tickets.models import CheckIn, Ticket

    with app.app_context():
        return db.session.execute(
            sa.select(CheckIn.verdict, CheckIn.flags, CheckIn.reason)
            .join(Ticket, Ticket.id == CheckIn.ticket_id).where(Ticket.number == number)
            .order_by(CheckIn.id)).all()


def test_refused_check_in_is_recorded_and_answers_422(app, as_user, walk) -> None:
    number = walk("in_progress")
    resp = _check_in(as_user, number, FAR)
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == "checkin_refused" and "米" in body["message"]
    assert body["details"]["flags"] == ["outside_area"]
    assert body["current"]["status"] == "in_progress"  # nothing moved
    assert body["event"]["kind"] == "check_in_refused"
    assert _rows(app, number) == [("refused", ["outside_area"], None)]
    events = as_user("township").get(f"/tickets/{number}/events").get_json()
    kinds = [e["kind"] for e in (events["items"] if isinstance(events, dict) else events)]
    assert kinds[-1] == "check_in_refused"


def test_refused_then_accepted_with_a_reason(app, as_user, walk) -> None:
    number = walk("in_progress")
    assert _check_in(as_user, number, FAR, fix_age_s=900).status_code == 422
    resp = _check_in(as_user, number, FAR, fix_age_s=900, reason="手机刚开机，定位较旧")
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert data["status"] == "on_site"
    assert data["event"]["data"]["verdict"] == "warning"
    assert "overridden" in data["event"]["data"]["flags"]
    assert [r.verdict for r in _rows(app, number)] == ["refused", "warning"]


def test_zero_accuracy_is_flagged_for_the_station(app, as_user, walk) -> None:
    number = walk("in_progress")
    resp = _check_in(as_user, number, NEAR, accuracy_m=0)
    assert resp.status_code == 200
    assert resp.get_json()["event"]["data"]["flags"] == ["zero_accuracy"]
    assert _rows(app, number)[0].verdict == "warning"


def test_inside_the_ticket_grid_counts_even_far_from_the_point(app, as_user, walk, world) -> None:
    from grids.models import Grid
    from server.core.db import db

    with app.app_context():
        grid = db.session.get(Grid, world.grids["G-HHW-01"])
        grid.geom = MultiPolygon([box(FAR[0] - 0.002, FAR[1] - 0.002, FAR[0] + 0.002, FAR[1] + 0.002)])
        db.session.commit()
    number = walk("in_progress")
    resp = _check_in(as_user, number, FAR)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["event"]["data"]["inside_grid"] is True


def test_a_refused_check_in_replayed_with_its_key_is_recorded_once(app, as_user, walk) -> None:
    number = walk("in_progress")
    worker = as_user("worker")
    body = {"lng": FAR[0], "lat": FAR[1], "accuracy_m": 8, "fix_age_s": 5}
    first = worker.post(f"/tickets/{number}/check-in", body, key="refused-1")
    again = worker.post(f"/tickets/{number}/check-in", body, key="refused-1")
    assert first.status_code == again.status_code == 422
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(_rows(app, number)) == 1
