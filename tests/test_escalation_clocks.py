"""Clocks kept in step with the ticket: start, stop, extension, suspension, return, reject,
reopen — and the ticket's displayed deadlines always equal to its clocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.test_escalation_support import (
    accept_at,
    act_at,
    clocks,
    events,
    open_clock,
    rows,
    scan,
    seed,
    sh,
    ticket_row,
)

REPLY = {"result": "已处理完毕", "resolution": "resolved"}


@pytest.fixture
def esc(app, world):  # type: ignore[no-untyped-def]
    seed(app)
    return app, world


def _to_worker(app, world, number: str, at) -> None:  # type: ignore[no-untyped-def]
    act_at(app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"}, at)


def test_accept_starts_sign_and_reply(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    sign, reply = open_clock(app, number, "sign"), open_clock(app, number, "reply")
    assert sign["due_at"] == sh(2025, 3, 4, 10) and sign["rule_code"] == "default.sign"
    assert reply["due_at"] == sh(2025, 3, 10, 10) and reply["rule_code"] == "default.reply"
    assert sign["due_soon_at"] == sh(2025, 3, 4, 10) - timedelta(hours=24 * 0.2)
    assert sign["calendar_version"] >= 1 and sign["provisional"] is False
    t = ticket_row(app, number)
    assert (t["response_due"], t["handling_due"]) == (sign["due_at"], reply["due_at"])
    accepted = events(app, number, "accept")[0]["data"]
    assert accepted["response_due"] == sign["due_at"].isoformat()
    assert accepted["handling_due"] == reply["due_at"].isoformat()


@pytest.mark.parametrize(("urgency", "sign_due", "reply_due"), [
    # Life and property: 15 minutes, natural time, the National Day holiday included.
    ("emergency", sh(2025, 10, 1, 10, 15), sh(2025, 10, 2, 10)),
    # Outages: 30 minutes natural; handling still 5 working days, counted from 9 October.
    ("urgent", sh(2025, 10, 1, 10, 30), sh(2025, 10, 15, 0)),
    ("normal", sh(2025, 10, 10, 0), sh(2025, 10, 15, 0)),
])
def test_natural_minutes_ignore_holidays(esc, urgency, sign_due, reply_due) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 10, 1, 10), urgency=urgency)
    assert open_clock(app, number, "sign")["due_at"] == sign_due
    assert open_clock(app, number, "reply")["due_at"] == reply_due
    assert ticket_row(app, number)["response_due"] == sign_due


def test_each_assignment_has_its_own_sign_clock(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    data = act_at(app, world, number, "hotline", "dispatch", {"unit": "210102"},
                  sh(2025, 3, 3, 10, 5))
    assert data["sla"] == [{"clock": "sign", "due": sh(2025, 3, 4, 10).isoformat(),
                            "late": False, "overdue_minutes": 0, "excused": False,
                            "rule": "default.sign"}]
    assert data["response_due"] == sh(2025, 3, 4, 10, 5).isoformat()
    signs = [c for c in clocks(app, number) if c["kind"] == "sign"]
    assert [(c["seq"], c["stop_reason"]) for c in signs] == [(1, "dispatched"), (2, None)]
    assert signs[1]["unit_id"] == world.units["210102"]
    # The reply clock follows the ticket; its deadline is the ticket's, unchanged.
    reply = open_clock(app, number, "reply")
    assert reply["unit_id"] == world.units["210102"] and reply["due_at"] == sh(2025, 3, 10, 10)


def test_a_late_signature_says_so_in_its_event(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    data = act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 4, 12, 5))
    assert data["late"] is True  # the core's own flag agrees with the clock
    assert data["sla"][0]["late"] is True and data["sla"][0]["overdue_minutes"] == 120
    # A grid worker's signature starts the check-in clock.
    check_in = open_clock(app, number, "check_in")
    assert check_in["due_at"] == sh(2025, 3, 5, 12, 5) and check_in["rule_code"] == \
        "default.check_in"
    data = act_at(app, world, number, "worker", "check-in",
                  {"lng": 123.4306, "lat": 41.7421, "accuracy_m": 8, "fix_age_s": 5},
                  sh(2025, 3, 4, 13))
    assert data["sla"][0]["clock"] == "check_in" and data["sla"][0]["late"] is False


def test_reply_starts_review_for_the_unit_above(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 3, 11))
    data = act_at(app, world, number, "worker", "reply", REPLY, sh(2025, 3, 7, 16))
    kinds = {o["clock"]: o for o in data["sla"]}
    assert kinds["reply"]["late"] is False
    assert "check_in" in kinds  # replied without checking in: the check-in clock stops
    review = open_clock(app, number, "review")
    assert review["unit_id"] == world.units["210102001"]  # the township reviews the village
    assert review["due_at"] == sh(2025, 3, 10, 16)
    data = act_at(app, world, number, "township", "approve", {}, sh(2025, 3, 8, 9))
    assert data["sla"][0]["clock"] == "review"
    assert all(c["stopped_at"] is not None for c in clocks(app, number))


def test_extension_moves_the_deadline(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 3, 11))
    act_at(app, world, number, "worker", "request-extension",
           {"days": 3, "reason": "需协调供电公司"}, sh(2025, 3, 6, 9))
    data = act_at(app, world, number, "township", "decide-extension", {"approve": True},
                  sh(2025, 3, 6, 10))
    reply = open_clock(app, number, "reply")
    assert reply["due_at"] == sh(2025, 3, 13, 10) and reply["extended_days"] == 3
    assert ticket_row(app, number)["handling_due"] == reply["due_at"]
    assert data["handling_due"] == reply["due_at"].isoformat()


def test_suspension_is_excluded_and_a_recorded_breach_stays(esc) -> None:  # type: ignore[no-untyped-def]
    from escalation.clocks import on_ticket_event
    from server.core.db import db
    from server.tickets import operations as ops
    from server.tickets.queries import lock_tickets_for_job

    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    scan(app, sh(2025, 3, 4, 11))  # the sign deadline (Tue 10:05) passed: breach recorded
    sign = open_clock(app, number, "sign")
    assert sign["breached_at"] == sh(2025, 3, 4, 10, 5) and sign["step"] == 2
    ticket_id = ticket_row(app, number)["id"]

    def event(kind: str, at) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        with app.app_context():
            ticket = lock_tickets_for_job([ticket_id])[ticket_id]
            sync = on_ticket_event(ops._clock_facts(ticket), kind, at, {})
            for name, value in sync.fields.items():
                setattr(ticket, name, value)
            db.session.commit()
            return sync.fields

    event("suspend", sh(2025, 3, 4, 12))
    assert open_clock(app, number, "sign")["next_fire_at"] is None  # no alerts while paused
    assert scan(app, sh(2025, 3, 7, 12)).escalated == 0
    fields = event("resume", sh(2025, 3, 7, 12))  # three days suspended
    sign, reply = open_clock(app, number, "sign"), open_clock(app, number, "reply")
    assert sign["due_at"] == sh(2025, 3, 7, 10, 5) and sign["suspended_seconds"] == 3 * 86400
    assert reply["due_at"] == sh(2025, 3, 13, 10)
    assert fields["handling_due"] == reply["due_at"]
    assert sign["breached_at"] == sh(2025, 3, 4, 10, 5)  # never hidden
    data = act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 7, 12, 30))
    assert data["sla"][0]["late"] is True


def test_a_clock_reminded_before_a_suspension_is_not_reminded_again(esc) -> None:  # type: ignore[no-untyped-def]
    """The sweep leaves a reminded clock's step at 0; resuming moves the due-soon point by the
    pause, behind the moment of resuming — the clock knows it was reminded, and waits for
    its deadline instead of firing the moved point at once."""
    from escalation.clocks import on_ticket_event
    from escalation.models import Notification
    from server.core.db import db
    from server.tickets import operations as ops
    from server.tickets.queries import lock_tickets_for_job

    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    assert scan(app, sh(2025, 3, 4, 6)).due_soon == 1  # sign due soon from 05:17
    ticket_id = ticket_row(app, number)["id"]
    for kind, at in (("suspend", sh(2025, 3, 4, 7)), ("resume", sh(2025, 3, 6, 7))):
        with app.app_context():
            ticket = lock_tickets_for_job([ticket_id])[ticket_id]
            on_ticket_event(ops._clock_facts(ticket), kind, at, {})
            db.session.commit()
    sign = open_clock(app, number, "sign")
    assert sign["due_soon_at"] == sh(2025, 3, 6, 5, 17) and sign["due_at"] == sh(2025, 3, 6, 10, 5)
    assert sign["step"] == 1 and sign["next_fire_at"] == sign["due_at"]
    assert scan(app, sh(2025, 3, 6, 7, 1)).due_soon == 0
    assert len(rows(app, Notification, kind="due_soon")) == 1


def test_return_within_the_grace_period_is_not_late(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    act_at(app, world, number, "hotline", "dispatch", {"unit": "210102002"},
           sh(2025, 3, 3, 10, 5))
    # Returned on Wednesday morning: past the 1-day sign deadline, within 2 working days.
    data = act_at(app, world, number, "township2", "return", {"reason": "不属于本街道辖区"},
                  sh(2025, 3, 5, 9))
    assert data["return"]["within_grace"] is True
    sign = data["sla"][0]
    assert sign["clock"] == "sign" and sign["late"] is False and sign["excused"] is True
    replies = [c for c in clocks(app, number) if c["kind"] == "reply"]
    assert [(c["seq"], c["stop_reason"], c["excused"]) for c in replies] == [
        (1, "returned", True), (2, None, False)]
    # The next holder gets the full handling time from the return.
    assert replies[1]["due_at"] == sh(2025, 3, 12, 9)
    assert ticket_row(app, number)["handling_due"] == sh(2025, 3, 12, 9)
    assert open_clock(app, number, "sign")["unit_id"] != world.units["210102002"]


def test_grace_excuses_the_holder_but_keeps_the_breach_on_record(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    act_at(app, world, number, "hotline", "dispatch", {"unit": "210102002"},
           sh(2025, 3, 3, 10, 5))
    assert scan(app, sh(2025, 3, 4, 11)).escalated == 1  # the sign deadline was missed
    data = act_at(app, world, number, "township2", "return", {"reason": "不属于本街道"},
                  sh(2025, 3, 5, 9))
    assert data["sla"][0]["late"] is False and data["sla"][0]["excused"] is True
    stopped = [c for c in clocks(app, number) if c["kind"] == "sign"][1]
    assert stopped["breached_at"] == sh(2025, 3, 4, 10, 5) and stopped["excused"] is True


def test_return_after_the_grace_period_counts(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    act_at(app, world, number, "hotline", "dispatch", {"unit": "210102002"},
           sh(2025, 3, 3, 10, 5))
    data = act_at(app, world, number, "township2", "return", {"reason": "不属于本街道"},
                  sh(2025, 3, 6, 9))
    assert data["return"]["within_grace"] is False
    assert data["sla"][0]["late"] is True and data["sla"][0]["excused"] is False
    # The handling deadline does not restart.
    assert open_clock(app, number, "reply")["due_at"] == sh(2025, 3, 10, 10)


def test_reject_resumes_the_reply_clock_without_new_time(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 3, 11))
    scan(app, sh(2025, 3, 9, 12))  # due soon for the reply clock
    act_at(app, world, number, "worker", "reply", REPLY, sh(2025, 3, 9, 13))
    act_at(app, world, number, "township", "reject", {"reason": "照片不清楚"}, sh(2025, 3, 9, 14))
    replies = [c for c in clocks(app, number) if c["kind"] == "reply"]
    assert len(replies) == 2 and replies[0]["stop_reason"] == "replied"
    assert replies[1]["due_at"] == replies[0]["due_at"] == sh(2025, 3, 10, 10)
    # The first clock's reminder went by the sweep (which leaves its step at 0); the
    # resumed clock knows it went and waits for the deadline: the reminder is not sent again.
    assert replies[1]["step"] == 1 and replies[1]["next_fire_at"] == replies[1]["due_at"]
    assert scan(app, sh(2025, 3, 9, 15)).due_soon == 0
    report = scan(app, sh(2025, 3, 10, 10, 1))
    assert report.escalated == 1


def test_reopen_starts_a_new_cycle_and_old_alerts_never_fire_again(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    _to_worker(app, world, number, sh(2025, 3, 3, 10, 5))
    scan(app, sh(2025, 3, 4, 10, 6))  # sign overdue: escalated, cycle 0
    act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 4, 11))
    act_at(app, world, number, "worker", "reply", REPLY, sh(2025, 3, 5, 11))
    act_at(app, world, number, "township", "approve", {}, sh(2025, 3, 5, 12))
    data = act_at(app, world, number, "hotline", "reopen", {"reason": "市民反映未解决"},
                  sh(2025, 3, 6, 9))
    assert data["cycle"] == 2
    cycle1 = [c for c in clocks(app, number) if c["cycle"] == 1]
    assert sorted(c["kind"] for c in cycle1) == ["reply", "sign"]
    assert all(c["stopped_at"] is not None for c in clocks(app, number) if c["cycle"] == 0)
    before = len(events(app, number, "escalate"))
    scan(app, sh(2025, 3, 7, 9, 1))  # the new cycle's sign deadline passed
    new = events(app, number, "escalate")[before:]
    assert [e["data"]["cycle"] for e in new] == [1]
    assert all(e["data"]["cycle"] == 0 for e in events(app, number, "escalate")[:before])
    t = ticket_row(app, number)
    assert t["response_due"] == sh(2025, 3, 7, 9) and t["reopen_count"] == 1
