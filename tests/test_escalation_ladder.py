"""The ladder and the scan: due soon, overdue, up to the county; exactly once; batched,
held to working hours; rules that change or are disabled; cost that follows what is due."""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from escalation.models import Clock, Escalation, Fired, Notification, ScanMark
from tests.conftest import count_queries, is_pg
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


@pytest.fixture
def esc(app, world):  # type: ignore[no-untyped-def]
    seed(app)
    return app, world


def _assigned(app, world, at, **overrides) -> str:  # type: ignore[no-untyped-def]
    """A ticket accepted at ``at`` and sent to grid G-HHW-01 (worker) five minutes later."""
    number = accept_at(app, world, at, **overrides)
    act_at(app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"},
           at.replace(minute=at.minute + 5))
    return number


def _outbox(app, topic: str) -> list[dict]:  # type: ignore[type-arg]
    from server.core.db import db
    from server.core.outbox import OutboxMessage

    with app.app_context():
        found = db.session.execute(
            sa.select(OutboxMessage).where(OutboxMessage.topic == topic)
            .order_by(OutboxMessage.id)).scalars().all()
        out = [{"payload": m.payload, "next_attempt_at": m.next_attempt_at} for m in found]
        db.session.remove()
        return out


def test_an_untouched_ticket_climbs_to_the_county(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = _assigned(app, world, sh(2025, 3, 3, 10))
    units = world.units
    assert scan(app, sh(2025, 3, 3, 20)).as_dict() | {"seconds": 0} == {
        "due_soon": 0, "escalated": 0, "already_fired": 0, "skipped": 0, "digests": 0,
        "seconds": 0, "complete": True}

    # 80 % of the day to sign: due soon from Tuesday 05:17.
    assert scan(app, sh(2025, 3, 4, 6)).due_soon == 1
    note = rows(app, Notification, kind="due_soon")
    assert [n["user_id"] for n in note] == [world.users["worker"]]
    assert note[0]["deliver_after"] == sh(2025, 3, 4, 8, 30)  # held to working hours
    assert scan(app, sh(2025, 3, 4, 7)).due_soon == 0  # never twice

    # Overdue at 10:05: the worker's own village contact point first…
    assert scan(app, sh(2025, 3, 4, 10, 6)).escalated == 1
    # …one working day later the township, then the county; then the ladder ends.
    assert scan(app, sh(2025, 3, 5, 10, 6)).escalated == 1
    assert scan(app, sh(2025, 3, 6, 10, 6)).escalated == 1
    assert scan(app, sh(2025, 3, 7, 10, 6)).escalated == 0
    ladder = events(app, number, "escalate")
    assert [(e["data"]["rung"], e["data"]["to"], e["data"]["level"], e["actor"])
            for e in ladder] == [(1, "210102001001", "village", "system"),
                                 (2, "210102001", "township", "system"),
                                 (3, "210102", "county", "system")]
    items = rows(app, Escalation)
    assert [(i["unit_id"], i["resolution"]) for i in items] == [
        (units["210102001001"], "escalated_further"), (units["210102001"], "escalated_further"),
        (units["210102"], None)]
    assert items[2]["event_id"] is not None and items[2]["deadline"] == sh(2025, 3, 4, 10, 5)
    escalated = rows(app, Notification, kind="escalated")
    assert [n["user_id"] for n in escalated] == [
        world.users["contact"], world.users["township"], world.users["county"]]
    assert [n["user_id"] for n in rows(app, Notification, kind="overdue")] == [
        world.users["worker"]]
    sign = open_clock(app, number, "sign")
    assert sign["breached_at"] == sh(2025, 3, 4, 10, 5) and sign["next_fire_at"] is None

    # Signing resolves the board item.
    act_at(app, world, number, "worker", "sign", {}, sh(2025, 3, 7, 11))
    assert rows(app, Escalation)[2]["resolution"] == "signed"


def test_the_ladder_reaches_the_city_where_configured(esc) -> None:  # type: ignore[no-untyped-def]
    from escalation import operations as esc_ops
    from escalation.schemas import RuleBody
    from hierarchy.models import User
    from server.core.db import db

    app, world = esc
    with app.app_context():
        admin = db.session.get(User, world.users["admin"])
        body = RuleBody(code="default.sign", name="1个工作日内签收", clock="sign", amount=1,
                        unit="working_days", top_level="city")
        esc_ops.do_save_rule(esc_ops.check_save_rule(admin, body), now=sh(2025, 3, 1))
        db.session.commit()
    number = _assigned(app, world, sh(2025, 3, 3, 10))
    for day in (4, 5, 6, 7, 10, 11):
        scan(app, sh(2025, 3, day, 10, 6))
    assert [e["data"]["to"] for e in events(app, number, "escalate")
            if e["data"]["clock"] == "sign"] == ["210102001001", "210102001", "210102", "210100"]


def test_emergencies_escalate_in_minutes_and_are_not_held(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    number = _assigned(app, world, sh(2025, 10, 1, 23, 0), urgency="emergency")
    sign = open_clock(app, number, "sign")
    assert sign["due_at"] == sh(2025, 10, 1, 23, 20)  # 15 minutes from the dispatch
    assert scan(app, sh(2025, 10, 1, 23, 18)).due_soon == 1
    note = rows(app, Notification, kind="due_soon")[0]
    assert note["urgent"] is True and note["deliver_after"] == sh(2025, 10, 1, 23, 18)
    assert note["dispatched_at"] == sh(2025, 10, 1, 23, 18)  # sent at once, on a holiday night
    scan(app, sh(2025, 10, 1, 23, 21))
    scan(app, sh(2025, 10, 1, 23, 36))
    scan(app, sh(2025, 10, 1, 23, 51))
    assert [e["data"]["to"] for e in events(app, number, "escalate")] == [
        "210102001001", "210102001", "210102"]


def test_twenty_due_tickets_make_one_message(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    for _ in range(20):
        _assigned(app, world, sh(2025, 3, 3, 10))
    report = scan(app, sh(2025, 3, 4, 6))
    assert report.due_soon == 20 and report.digests == 0  # 06:00: held until 08:30
    assert _outbox(app, "notify.sms") == []
    report = scan(app, sh(2025, 3, 4, 8, 31))
    assert report.digests == 1
    sms = _outbox(app, "notify.sms")
    assert len(sms) == 1
    assert sms[0]["payload"]["user"] == "worker" and sms[0]["payload"]["count"] == 20
    assert sms[0]["payload"]["phone"] == "13800000000"
    assert "20条" in sms[0]["payload"]["text"]
    inbox = rows(app, Notification, kind="due_soon")  # in-app too: one notice, twenty numbers
    assert len(inbox) == 1 and inbox[0]["data"]["count"] == 20
    assert len(set(inbox[0]["data"]["numbers"])) == 20 and inbox[0]["title"] == "您有20件工单即将超时"
    assert scan(app, sh(2025, 3, 4, 9)).digests == 0


def _two_scanners(app, now: datetime) -> list[Any]:  # type: ignore[no-untyped-def]
    """Run two scans at ``now`` at the same time (two threads, two sessions); their results."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(scan(app, now))
        except BaseException as exc:  # pragma: no cover - re-raised below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(isinstance(r, BaseException) for r in results), results
    return results


def test_scans_are_exactly_once_across_reruns_and_two_scanners(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    numbers = [_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(8)]
    now = sh(2025, 3, 4, 10, 6)
    _two_scanners(app, now)
    scan(app, now)
    for number in numbers:
        assert len(events(app, number, "escalate")) == 1, number
    assert len(rows(app, Escalation)) == 8
    assert len(rows(app, Notification, kind="overdue")) == 8
    assert len(rows(app, Notification, kind="escalated")) == 8
    assert len(rows(app, Fired)) == 8  # the due-soon rung was skipped: already overdue


def test_due_soon_reminders_fire_once_with_two_scanners_and_a_replayed_rung(esc) -> None:  # type: ignore[no-untyped-def]
    """Two scanners at once remind each ticket once, whichever path finds the reminder: the
    sweep (its mark locked by one scanner) or the clock's own next firing time (one statement
    on PostgreSQL, three on SQLite). A sweep replayed from the beginning, or a clock sent
    back to a rung whose ``fired`` row exists, notifies nobody a second time."""
    app, world = esc
    numbers = [_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(6)]
    now = sh(2025, 3, 4, 9)
    for n in numbers:  # the due-soon points lie a day ahead: left to the sweep
        sign = open_clock(app, n, "sign")
        assert sign["step"] == 0 and sign["next_fire_at"] == sign["due_at"]
    results = _two_scanners(app, now)
    assert sum(r.due_soon for r in results) == 6
    fired = rows(app, Fired)
    assert len(fired) == 6 and {f["rung"] for f in fired} == {0}
    reminded = [n for note in rows(app, Notification, kind="due_soon")
                for n in note["data"]["numbers"]]
    assert sorted(reminded) == sorted(numbers)
    # The sweep wrote nothing to the clocks.
    assert all(open_clock(app, n, "sign")["next_fire_at"] == open_clock(app, n, "sign")["due_at"]
               for n in numbers)
    assert rows(app, ScanMark)[0]["through_at"] == now

    with app.app_context():
        from server.core.db import db

        db.session.execute(sa.delete(ScanMark))  # a mark lost: the sweep reads from the start
        db.session.commit()
    assert scan(app, now).due_soon == 6  # handled again …
    assert len(rows(app, Fired)) == 6  # … but already fired: no second reminder
    with app.app_context():
        db.session.execute(sa.update(Clock).where(Clock.kind == "sign")
                           .values(step=0, next_fire_at=Clock.due_soon_at))
        db.session.commit()
    report = scan(app, now)
    assert report.due_soon == 6  # by their own firing time: moved on to the next rung …
    assert all(open_clock(app, n, "sign")["step"] == 1 for n in numbers)
    assert len(rows(app, Fired)) == 6  # … and still no second reminder
    assert sum(note["data"]["count"] for note in rows(app, Notification, kind="due_soon")) == 6


def test_the_sweep_resumes_inside_a_run_of_equal_due_soon_points(esc) -> None:  # type: ignore[no-untyped-def]
    """Five clocks due soon at the same instant, swept two at a time: the mark keeps the last
    clock id too, so each batch starts after the previous one, inside the run."""
    app, world = esc
    numbers = [_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(5)]
    assert len({open_clock(app, n, "sign")["due_soon_at"] for n in numbers}) == 1
    report = scan(app, sh(2025, 3, 4, 9), reminder_batch=2)
    assert report.due_soon == 5
    fired = rows(app, Fired)
    assert len(fired) == 5 and len({f["ticket_id"] for f in fired}) == 5
    notes = rows(app, Notification, kind="due_soon")
    assert sorted(n for note in notes for n in note["data"]["numbers"]) == sorted(numbers)
    assert scan(app, sh(2025, 3, 4, 9, 1), reminder_batch=2).due_soon == 0


def test_reminders_name_the_ticket_with_or_without_the_clock_s_copy_of_its_number(esc) -> None:  # type: ignore[no-untyped-def]
    """Clocks carry their ticket's number (migration 0012), so the scan's notices need not
    read 9,000 tickets; a clock started before the copy existed (null) is named all the
    same, from its ticket — in the due-soon notice and in the overdue rung."""
    from server.core.db import db

    app, world = esc
    copied, legacy = (_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(2))
    assert {c["ticket_number"] for c in clocks(app, copied)} == {copied}
    with app.app_context():
        db.session.execute(sa.update(Clock).where(
            Clock.ticket_id == ticket_row(app, legacy)["id"]).values(ticket_number=None))
        db.session.commit()
    assert {c["ticket_number"] for c in clocks(app, legacy)} == {None}

    assert scan(app, sh(2025, 3, 4, 6)).due_soon == 2
    notes = rows(app, Notification, kind="due_soon")
    assert len(notes) == 1 and sorted(notes[0]["data"]["numbers"]) == sorted([copied, legacy])
    assert scan(app, sh(2025, 3, 4, 10, 6)).escalated == 2
    overdue = rows(app, Notification, kind="overdue")
    assert sorted(n["data"]["number"] for n in overdue) == sorted([copied, legacy])
    assert sorted(n["title"] for n in overdue) == sorted(
        f"工单{n}签收已超时" for n in (copied, legacy))


def test_a_due_soon_point_set_near_is_fired_even_behind_the_sweep(esc) -> None:  # type: ignore[no-untyped-def]
    """A rule tightened at 13:10 moves the sign clock's due-soon point to 13:17: too near to
    trust the sweep (whose mark may pass it before the change commits), so it becomes the
    clock's own next firing time — fired even when the mark is already beyond it."""
    from escalation import operations as esc_ops
    from escalation.schemas import RuleBody
    from hierarchy.models import User
    from server.core.db import db

    app, world = esc
    number = _assigned(app, world, sh(2025, 3, 3, 10))  # sign clock from 10:05
    with app.app_context():
        county = db.session.get(User, world.users["county"])
        four_hours = RuleBody(code="hp.sign4h", name="和平区：4小时内签收", clock="sign",
                              scope_unit="210102", amount=240, unit="minutes")
        esc_ops.do_save_rule(esc_ops.check_save_rule(county, four_hours), now=sh(2025, 3, 3, 13, 10))
        db.session.commit()
    sign = open_clock(app, number, "sign")
    assert sign["due_at"] == sh(2025, 3, 3, 14, 5) and sign["due_soon_at"] == sh(2025, 3, 3, 13, 17)
    assert sign["step"] == 0 and sign["next_fire_at"] == sign["due_soon_at"]
    with app.app_context():  # a sweep passed 13:17 while the change was being written
        db.session.execute(sa.delete(ScanMark))
        db.session.add(ScanMark(name="due_soon", through_at=sh(2025, 3, 3, 13, 30), through_id=0,
                                updated_at=sh(2025, 3, 3, 13, 30)))
        db.session.commit()
    assert scan(app, sh(2025, 3, 3, 13, 31)).due_soon == 1
    assert open_clock(app, number, "sign")["step"] == 1
    assert [note["data"]["number"] for note in rows(app, Notification, kind="due_soon")] == [number]


def test_a_crash_mid_scan_loses_and_doubles_nothing(esc) -> None:  # type: ignore[no-untyped-def]
    app, world = esc
    numbers = [_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(6)]
    now = sh(2025, 3, 4, 10, 6)

    class WorkerKilled(Exception):
        pass

    def die_at_third(done: int) -> None:
        if done == 3:
            raise WorkerKilled

    with pytest.raises(WorkerKilled):
        scan(app, now, after_each=die_at_third, commit_every=1)
    done = sum(len(events(app, n, "escalate")) for n in numbers)
    assert done == 3
    report = scan(app, now)  # the restarted worker
    assert report.escalated == 3
    assert [len(events(app, n, "escalate")) for n in numbers] == [1] * 6
    assert len(rows(app, Escalation)) == 6
    assert report.digests >= 1  # the notices of the first run go out with the second


def test_disabling_a_rule_clears_its_escalations_and_stops_its_alerts(esc) -> None:  # type: ignore[no-untyped-def]
    from escalation import operations as esc_ops
    from hierarchy.models import User
    from server.core.db import db

    app, world = esc
    number = _assigned(app, world, sh(2025, 3, 3, 10))
    scan(app, sh(2025, 3, 4, 10, 6))
    assert rows(app, Escalation)[0]["resolved_at"] is None

    def set_enabled(enabled: bool, at) -> None:  # type: ignore[no-untyped-def]
        with app.app_context():
            admin = db.session.get(User, world.users["admin"])
            checked = esc_ops.check_set_rule_enabled(admin, "default.sign", enabled)
            esc_ops.do_set_rule_enabled(checked, now=at)
            db.session.commit()

    set_enabled(False, sh(2025, 3, 4, 11))
    item = rows(app, Escalation)[0]
    assert item["resolution"] == "rule_disabled"
    sign = open_clock(app, number, "sign")
    assert sign["rule_code"] is None and sign["next_fire_at"] is None
    assert sign["breached_at"] == sh(2025, 3, 4, 10, 5)  # the breach stays recorded
    assert ticket_row(app, number)["response_due"] is None
    assert scan(app, sh(2025, 3, 9, 10)).escalated == 0
    assert len(events(app, number, "escalate")) == 1

    # Enabled again: the same deadline, and what fired for it does not fire twice.
    set_enabled(True, sh(2025, 3, 4, 12))
    assert open_clock(app, number, "sign")["due_at"] == sh(2025, 3, 4, 10, 5)
    report = scan(app, sh(2025, 3, 4, 12, 1))
    assert report.escalated == 0 and report.already_fired == 1
    assert len(events(app, number, "escalate")) == 1


def test_a_county_may_tighten_not_loosen_and_open_tickets_follow(esc) -> None:  # type: ignore[no-untyped-def]
    from escalation import operations as esc_ops
    from escalation.schemas import RuleBody
    from hierarchy.models import User
    from server.core.db import db
    from server.core.errors import Forbidden, InvalidInput

    app, world = esc
    here = accept_at(app, world, sh(2025, 3, 3, 10))  # located in 和平区 (grid G-HHW-01)
    elsewhere = accept_at(app, world, sh(2025, 3, 3, 10), location={
        "lng": 123.47, "lat": 41.80, "crs": "wgs84"}, address="沈河区滨河街道")
    closed = _assigned(app, world, sh(2025, 3, 3, 9))
    act_at(app, world, closed, "worker", "sign", {}, sh(2025, 3, 3, 9, 30))
    act_at(app, world, closed, "worker", "reply", {"result": "已处理", "resolution": "resolved"},
           sh(2025, 3, 3, 11))
    act_at(app, world, closed, "township", "approve", {}, sh(2025, 3, 3, 12))
    closed_before = clocks(app, closed)

    with app.app_context():
        county = db.session.get(User, world.users["county"])
        tighter = RuleBody(code="hp.reply", name="和平区：3个工作日内办结", clock="reply",
                           scope_unit="210102", amount=3, unit="working_days")
        _row, report = esc_ops.do_save_rule(esc_ops.check_save_rule(county, tighter),
                                            now=sh(2025, 3, 3, 13))
        db.session.commit()
        assert report.changed >= 1
        looser = RuleBody(code="hp.sign", name="和平区：3个工作日内签收", clock="sign",
                          scope_unit="210102", amount=3, unit="working_days")
        with pytest.raises(InvalidInput) as caught:
            esc_ops.check_save_rule(county, looser)
        assert caught.value.code == "rule_looser_than_above"
        elsewhere_rule = RuleBody(code="sh.reply", name="沈河区", clock="reply",
                                  scope_unit="210103", amount=2, unit="working_days")
        with pytest.raises(Forbidden):
            esc_ops.check_save_rule(county, elsewhere_rule)
        db.session.rollback()

    reply = open_clock(app, here, "reply")
    assert reply["rule_code"] == "hp.reply" and reply["due_at"] == sh(2025, 3, 6, 10)
    assert ticket_row(app, here)["handling_due"] == sh(2025, 3, 6, 10)
    other = open_clock(app, elsewhere, "reply")
    if ticket_row(app, elsewhere)["grid_id"] is None or other["scope_path"] != reply["scope_path"]:
        assert other["rule_code"] == "default.reply"
    assert clocks(app, closed) == closed_before  # closed tickets keep what they had

    # A county rule cannot loosen even when the province's rule is more specific: the
    # earliest deadline wins at run time too.
    number = accept_at(app, world, sh(2025, 3, 3, 14), urgency="emergency")
    assert open_clock(app, number, "reply")["due_at"] == sh(2025, 3, 4, 14)


def test_scan_cost_follows_the_tickets_becoming_due(esc) -> None:  # type: ignore[no-untyped-def]
    """Twice as many open tickets not yet due: the scan runs the same statements."""
    app, world = esc
    now = sh(2025, 3, 4, 10, 6)
    for _ in range(3):
        _assigned(app, world, sh(2025, 3, 3, 10))

    def cost() -> int:
        with app.app_context():
            from server.core.db import db

            db.session.execute(sa.update(Clock).where(Clock.kind == "sign")
                               .values(step=0, next_fire_at=Clock.due_soon_at))
            db.session.execute(sa.delete(Fired))
            db.session.execute(sa.delete(ScanMark))  # the sweep reads its range again
            db.session.commit()
        with count_queries(app) as statements:
            scan(app, now)
        return len(statements)

    for _ in range(10):
        accept_at(app, world, sh(2025, 3, 4, 10))  # open, not due
    first = cost()
    for _ in range(20):
        accept_at(app, world, sh(2025, 3, 4, 10))
    assert cost() == first


def test_a_scan_with_nothing_new_only_reads(esc) -> None:  # type: ignore[no-untyped-def]
    """Every minute, with nothing due: index probes only — no lock taken, no row written (on
    SQLite a write would hold the database's one write lock against every ticket action)."""
    app, world = esc
    _assigned(app, world, sh(2025, 3, 3, 10))
    scan(app, sh(2025, 3, 3, 11))  # the sweep's mark exists
    with count_queries(app) as statements:
        report = scan(app, sh(2025, 3, 3, 12))
    assert report.due_soon == report.escalated == 0
    assert statements and all(st.lstrip().upper().startswith("SELECT") for st in statements)
    assert not any("scan_marks" in st and "FOR UPDATE" in st.upper() for st in statements)


@pytest.mark.postgres_only
@pytest.mark.skipif(not is_pg(), reason="row locks across connections need PostgreSQL")
def test_a_ticket_being_changed_is_skipped_not_waited_for(esc) -> None:  # type: ignore[no-untyped-def]
    from server.core.db import db

    app, world = esc
    number = _assigned(app, world, sh(2025, 3, 3, 10))
    ticket_id = ticket_row(app, number)["id"]
    with app.app_context():
        holder = db.engine.connect()
        transaction = holder.begin()
        holder.execute(sa.text("SELECT id FROM tickets WHERE id = :id FOR UPDATE"),
                       {"id": ticket_id})
        try:
            report = scan(app, sh(2025, 3, 4, 10, 6))
        finally:
            transaction.rollback()
            holder.close()
    assert report.skipped == 1 and report.escalated == 0
    assert scan(app, sh(2025, 3, 4, 10, 7)).escalated == 1


def test_a_holiday_between_start_and_deadline(esc) -> None:  # type: ignore[no-untyped-def]
    """The scan's clock moved across National Day: nothing fires during the holiday."""
    app, world = esc
    number = _assigned(app, world, sh(2025, 9, 30, 10))
    assert open_clock(app, number, "sign")["due_at"] == sh(2025, 10, 9, 10, 5)
    for day in range(1, 8):
        report = scan(app, sh(2025, 10, day, 12))
        assert report.escalated == 0, date(2025, 10, day)
    assert scan(app, sh(2025, 10, 9, 10, 4)).escalated == 0
    assert scan(app, sh(2025, 10, 9, 10, 6)).escalated == 1
