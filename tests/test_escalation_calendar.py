"""The working-day calendar: Spring Festival 2025, National Day 2025, the year boundary, a
year nobody has entered yet (2027), edits by administrators, and time-zone independence."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import calendar as cal
from escalation.rules import DEFAULTS, Facts
from tests.test_escalation_support import (
    accept_at,
    act_at,
    clocks,
    open_clock,
    rows,
    seed,
    sh,
    ticket_row,
)


def _db_calendar(app):  # type: ignore[no-untyped-def]
    seed(app)
    with app.app_context():
        cal.forget_cached()
        return cal.current()


# ---------------------------------------------------------------- fixtures of real years


SPRING_FESTIVAL_2025 = {
    date(2025, 1, 25): False,   # a plain Saturday
    date(2025, 1, 26): True,    # Sunday, adjusted working day
    date(2025, 1, 27): True,    # Monday before the holiday
    date(2025, 1, 28): False,   # New Year's Eve, holiday starts
    date(2025, 1, 29): False,
    date(2025, 1, 31): False,
    date(2025, 2, 3): False,    # a Monday off
    date(2025, 2, 4): False,    # last day off
    date(2025, 2, 5): True,
    date(2025, 2, 8): True,     # Saturday, adjusted working day
    date(2025, 2, 9): False,    # Sunday, off
}


@pytest.mark.parametrize("source", ["package", "database"])
def test_spring_festival_2025_days(app, source) -> None:  # type: ignore[no-untyped-def]
    calendar = cal.PACKAGE if source == "package" else _db_calendar(app)
    for day, working in SPRING_FESTIVAL_2025.items():
        assert calendar.is_workday(day) == (working, False), day
    assert calendar.names[date(2025, 1, 26)] == "Spring Festival"


@pytest.mark.parametrize(("start", "days", "expected"), [
    # Friday afternoon + 1 working day: the working Sunday before the holiday.
    (sh(2025, 1, 24, 15), 1, sh(2025, 1, 26, 15)),
    # Saturday (off): the clock starts at 00:00 of the working Sunday.
    (sh(2025, 1, 25, 10), 1, sh(2025, 1, 27, 0)),
    # The last working day before the holiday + 1: the first day after it.
    (sh(2025, 1, 27, 10), 1, sh(2025, 2, 5, 10)),
    # Accepted during the holiday: the clock waits for 5 February.
    (sh(2025, 1, 29, 10), 1, sh(2025, 2, 6, 0)),
    # Friday + 1: the working Saturday 8 February.
    (sh(2025, 2, 7, 10), 1, sh(2025, 2, 8, 10)),
    # Five working days across the holiday: 5, 6, 7, 8 (Sat), 10 February.
    (sh(2025, 1, 27, 10), 5, sh(2025, 2, 10, 10)),
    # National Day 2025 (1–8 October off, Sunday 28 September and Saturday 11 October on).
    (sh(2025, 9, 30, 10), 1, sh(2025, 10, 9, 10)),
    (sh(2025, 9, 27, 10), 1, sh(2025, 9, 29, 0)),
    (sh(2025, 10, 10, 10), 1, sh(2025, 10, 11, 10)),
    # The year boundary: New Year 2026 is Thursday–Saturday off, Sunday 4 January on.
    (sh(2025, 12, 31, 16), 1, sh(2026, 1, 4, 16)),
    (sh(2025, 12, 31, 16), 2, sh(2026, 1, 5, 16)),
    # Zero days on a working day is the start itself.
    (sh(2025, 3, 3, 9), 0, sh(2025, 3, 3, 9)),
])
def test_add_working_days(app, start, days, expected) -> None:  # type: ignore[no-untyped-def]
    calendar = _db_calendar(app)
    for c in (cal.PACKAGE, calendar):
        due, provisional = c.add_working_days(start, days)
        assert due == expected, (c.token, start, days)
        assert due.tzinfo is not None and due.utcoffset() == timedelta(0)
        assert provisional is False


def test_the_shanghai_day_counts_not_the_utc_day() -> None:
    """Friday 23:30 UTC is Saturday 07:30 in Shanghai: a day off, whatever UTC says."""
    friday_night_utc = datetime(2025, 3, 7, 23, 30, tzinfo=UTC)
    assert friday_night_utc.astimezone(cal.SHANGHAI).weekday() == 5
    due, _ = cal.PACKAGE.add_working_days(friday_night_utc, 1)
    assert due == sh(2025, 3, 11, 0)  # starts Monday 00:00, ends Tuesday 00:00


def test_a_year_nobody_entered_is_provisional_never_an_error(app) -> None:  # type: ignore[no-untyped-def]
    import chinese_calendar

    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))  # what breaks systems every January
    calendar = _db_calendar(app)
    assert 2027 not in calendar.known_years
    due, provisional = calendar.add_working_days(sh(2026, 12, 31, 10), 1)
    assert due == sh(2027, 1, 1, 10)  # weekends only: 1 January counts as a working day
    assert provisional is True
    due, provisional = calendar.add_working_days(sh(2027, 6, 4, 10), 1)  # a Friday
    assert (due, provisional) == (sh(2027, 6, 7, 10), True)
    assert cal.is_workday(date(2030, 1, 1)) == (True, True)  # no app context: the package


def test_work_hours_start(app) -> None:  # type: ignore[no-untyped-def]
    calendar = _db_calendar(app)
    assert calendar.work_hours_start(sh(2025, 3, 3, 10))[0] == sh(2025, 3, 3, 10)
    assert calendar.work_hours_start(sh(2025, 3, 3, 7))[0] == sh(2025, 3, 3, 8, 30)
    assert calendar.work_hours_start(sh(2025, 3, 3, 18))[0] == sh(2025, 3, 4, 8, 30)
    # Evening before National Day: held over the whole holiday.
    assert calendar.work_hours_start(sh(2025, 9, 30, 22))[0] == sh(2025, 10, 9, 8, 30)
    # Friday night before the working Sunday of the Spring Festival.
    assert calendar.work_hours_start(sh(2025, 1, 24, 20))[0] == sh(2025, 1, 26, 8, 30)


# ---------------------------------------------------------------- time-zone independence

ZONES = ["UTC", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati", "Asia/Shanghai",
         "Pacific/Pago_Pago", "Europe/London"]


def _everything(start: datetime, days: int) -> tuple[object, ...]:
    facts = Facts("complaint", None, "normal", "township", "/1/")
    resolved = DEFAULTS.resolve("reply", facts, start, cal.PACKAGE)
    return (
        cal.PACKAGE.add_working_days(start, days),
        cal.PACKAGE.work_hours_start(start),
        resolved.due_at,
        cal.PACKAGE.missing_years(start, start + timedelta(days=days * 2)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    instant=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31),
                         timezones=st.just(UTC)),
    days=st.integers(min_value=0, max_value=12),
)
def test_results_do_not_depend_on_the_server_time_zone(instant: datetime, days: int) -> None:
    saved = os.environ.get("TZ")
    try:
        os.environ["TZ"] = "UTC"
        time.tzset()
        expected = _everything(instant, days)
        for zone in ZONES:
            os.environ["TZ"] = zone
            time.tzset()
            assert _everything(instant, days) == expected, zone
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


# ---------------------------------------------------------------- the calendar in the database


def test_seeded_from_the_package(app) -> None:  # type: ignore[no-untyped-def]
    from escalation.models import CalendarDay, CalendarYear

    seed(app)
    years = {r["year"] for r in rows(app, CalendarYear)}
    assert years == set(cal.package_years())
    days = {r["day"]: r["is_workday"] for r in rows(app, CalendarDay)}
    assert days[date(2025, 1, 26)] is True and days[date(2025, 1, 28)] is False
    assert date(2025, 1, 25) not in days  # plain weekends are not stored


def test_entering_2027_recomputes_provisional_deadlines(app, world) -> None:  # type: ignore[no-untyped-def]
    """A ticket at the end of 2026 gets a provisional deadline, a flag and an administrator
    alert; entering 2027 makes it final and recomputes it."""
    from escalation import operations as ops
    from escalation.models import Notification
    from escalation.schemas import CalendarYearBody
    from hierarchy.models import User
    from server.core.db import db

    seed(app)
    number = accept_at(app, world, sh(2026, 12, 30, 10))
    reply = open_clock(app, number, "reply")
    assert reply["provisional"] is True
    # Weekends only: 31 Dec, 1 (Fri), 4, 5, 6 January.
    assert reply["due_at"] == sh(2027, 1, 6, 10)
    t = ticket_row(app, number)
    assert t["deadline_provisional"] is True and t["handling_due"] == reply["due_at"]
    alerts = rows(app, Notification, kind="calendar_missing")
    assert [a["user_id"] for a in alerts] == [world.users["admin"]]
    assert alerts[0]["data"] == {"year": 2027}
    accept_at(app, world, sh(2026, 12, 30, 11))  # a second ticket: no second alert
    assert len(rows(app, Notification, kind="calendar_missing")) == 1

    with app.app_context():
        admin = db.session.get(User, world.users["admin"])
        body = CalendarYearBody(
            year=2027, holidays=[date(2027, 1, 1), date(2027, 1, 4)], workdays=[],
            names={"2027-01-04": "New Year's Day (example)"})
        report = ops.do_enter_year(ops.check_enter_year(admin, body), now=sh(2026, 12, 30, 12))
        db.session.commit()
        assert report.changed >= 2
    reply = open_clock(app, number, "reply")
    assert reply["provisional"] is False
    # 31 Dec, 5, 6, 7, 8 January (1 and 4 January entered as holidays).
    assert reply["due_at"] == sh(2027, 1, 8, 10)
    assert ticket_row(app, number)["handling_due"] == reply["due_at"]
    assert ticket_row(app, number)["deadline_provisional"] is False


def test_closed_tickets_keep_their_deadline_and_calendar_version(app, world) -> None:  # type: ignore[no-untyped-def]
    """An administrator declares a day off: open tickets move, closed ones do not."""
    from escalation import operations as ops
    from escalation.schemas import CalendarDayBody
    from hierarchy.models import User
    from server.core.db import db

    seed(app)
    closed = accept_at(app, world, sh(2025, 3, 3, 10))
    act_at(app, world, closed, "hotline", "dispatch", {"unit": "210102001"}, sh(2025, 3, 3, 11))
    act_at(app, world, closed, "township", "sign", {}, sh(2025, 3, 3, 12))
    act_at(app, world, closed, "township", "reply",
           {"result": "已处理", "resolution": "resolved"}, sh(2025, 3, 4, 12))
    act_at(app, world, closed, "county", "approve", {}, sh(2025, 3, 4, 13))
    before = {c["id"]: (c["due_at"], c["calendar_version"]) for c in clocks(app, closed)}
    still_open = accept_at(app, world, sh(2025, 3, 3, 10))
    assert open_clock(app, still_open, "reply")["due_at"] == sh(2025, 3, 10, 10)

    with app.app_context():
        admin = db.session.get(User, world.users["admin"])
        body = CalendarDayBody(day=date(2025, 3, 5), is_workday=False, name="临时停工")
        ops.do_set_day(ops.check_set_day(admin, body), now=sh(2025, 3, 4, 14))
        db.session.commit()
        version = cal.current().version
    reply = open_clock(app, still_open, "reply")
    assert reply["due_at"] == sh(2025, 3, 11, 10)
    assert reply["calendar_version"] == version
    assert ticket_row(app, still_open)["handling_due"] == sh(2025, 3, 11, 10)
    after = {c["id"]: (c["due_at"], c["calendar_version"]) for c in clocks(app, closed)}
    assert after == before
    assert all(v < version for _d, v in after.values())


def test_only_administrators_edit_the_calendar(app, world) -> None:  # type: ignore[no-untyped-def]
    from escalation import operations as ops
    from escalation.schemas import CalendarDayBody
    from hierarchy.models import User
    from server.core.db import db
    from server.core.errors import Forbidden

    seed(app)
    with app.app_context():
        county = db.session.get(User, world.users["county"])
        with pytest.raises(Forbidden):
            ops.check_set_day(county, CalendarDayBody(day=date(2025, 3, 5), is_workday=False))


def test_a_newer_package_year_is_imported_by_the_sync_job(app) -> None:  # type: ignore[no-untyped-def]
    """The hourly job notices years the package knows and the database lacks."""
    from escalation import operations as ops
    from escalation.models import CalendarDay, CalendarYear
    from server.core.db import db

    seed(app)
    with app.app_context():
        db.session.execute(sa.delete(CalendarDay).where(CalendarDay.day >= date(2026, 1, 1)))
        db.session.execute(sa.delete(CalendarYear).where(CalendarYear.year == 2026))
        db.session.commit()
        cal.forget_cached()
        assert cal.current().is_workday(date(2026, 1, 1)) == (True, True)
        assert ops.do_sync_calendar() == [2026]
        db.session.commit()
        assert cal.current().is_workday(date(2026, 1, 1)) == (False, False)
        assert ops.do_sync_calendar() == []
