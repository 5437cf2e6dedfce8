"""The Chinese working-day calendar (Asia/Shanghai), kept in the database.

Statutory holidays and adjusted working weekends (调休) are seeded from the ``chinesecalendar``
package and editable by administrators (:mod:`escalation.operations`). Only exceptions to the
weekday rule are stored, plus the list of years whose holidays have been entered.

The package raises for any year it has no data for yet — every January, for the new year, and
systems built straight on it break. Here a day in a year nobody has entered is judged by
weekends alone and the result is marked *provisional*, never an error; the clocks that used
it are recomputed when the year is entered.

All instants are UTC; only the calendar's days are Shanghai days, so nothing here depends on
the server's own time zone.
"""

from __future__ import annotations

import threading
import time as _time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import sqlalchemy as sa
from chinese_calendar import constants as _package

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Reminders to people wait for these hours on a working day (life-and-safety excepted).
WORK_START = time(8, 30)
WORK_END = time(17, 30)
#: How long a process trusts its cached calendar before asking the database for its token.
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class WorkCalendar:
    """Working days: exceptions to "Monday to Friday" for the years that are known."""

    version: int
    exceptions: Mapping[date, bool]
    known_years: frozenset[int]
    names: Mapping[date, str] = field(default_factory=dict)
    token: str = "package"
    #: (Shanghai start date, working days) → (end date, provisional): recomputing 100,000
    #: clocks asks the same few hundred questions over and over.
    _memo: dict[tuple[date, int], tuple[date, bool, bool]] = field(
        default_factory=dict, compare=False, hash=False, repr=False)

    def is_workday(self, day: date) -> tuple[bool, bool]:
        """(is it a working day, is that answer provisional)."""
        if day.year not in self.known_years:
            return day.weekday() < 5, True
        return self.exceptions.get(day, day.weekday() < 5), False

    def add_working_days(self, start: datetime, days: int) -> tuple[datetime, bool]:
        """The deadline ``days`` working days after ``start``; (deadline in UTC, provisional).

        Counting keeps the Shanghai time of day: accepted Friday 15:00 + 1 working day →
        Monday 15:00 (or the adjusted working Sunday before a holiday). Accepted on a day off,
        the clock starts at 00:00 of the next working day, so "1 working day" ends with that
        working day.
        """
        if start.tzinfo is None:
            raise ValueError("naive datetime given; every instant is UTC-aware")
        local = start.astimezone(SHANGHAI)
        key = (local.date(), days)
        found = self._memo.get(key)
        if found is None:
            found = self._count(*key)
            if len(self._memo) < 100_000:
                self._memo[key] = found
        day, provisional, started_off = found
        at = time(0, 0) if started_off else local.time()
        deadline = datetime.combine(day, at, tzinfo=SHANGHAI)
        return deadline.astimezone(UTC), provisional

    def _count(self, day: date, days: int) -> tuple[date, bool, bool]:
        """(the last day, provisional, did the count start on a day off)."""
        workday, provisional = self.is_workday(day)
        started_off = not workday
        if started_off:
            while True:
                day += timedelta(days=1)
                workday, prov = self.is_workday(day)
                provisional |= prov
                if workday:
                    break
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            workday, prov = self.is_workday(day)
            provisional |= prov
            if workday:
                remaining -= 1
        return day, provisional, started_off

    def work_hours_start(self, at: datetime) -> tuple[datetime, bool]:
        """``at`` if it falls within working hours of a working day, else the next start of
        working hours (08:30 Shanghai of the next working day)."""
        local = at.astimezone(SHANGHAI)
        day = local.date()
        workday, provisional = self.is_workday(day)
        if workday and WORK_START <= local.time() < WORK_END:
            return at, provisional
        if workday and local.time() < WORK_START:
            return datetime.combine(day, WORK_START, tzinfo=SHANGHAI).astimezone(UTC), provisional
        while True:
            day += timedelta(days=1)
            workday, prov = self.is_workday(day)
            provisional |= prov
            if workday:
                start = datetime.combine(day, WORK_START, tzinfo=SHANGHAI)
                return start.astimezone(UTC), provisional

    def missing_years(self, start: datetime, end: datetime) -> list[int]:
        """Years between two instants (Shanghai) whose holidays nobody has entered."""
        first = start.astimezone(SHANGHAI).year
        last = end.astimezone(SHANGHAI).year
        return [y for y in range(first, last + 1) if y not in self.known_years]


def package_years() -> frozenset[int]:
    """The years the installed ``chinesecalendar`` has data for."""
    return frozenset(d.year for d in _package.holidays)


def package_exceptions(years: Iterable[int] | None = None) -> dict[date, tuple[bool, str]]:
    """Exceptions to the weekday rule in the package: {day: (is working day, holiday name)}."""
    wanted = set(years) if years is not None else None
    out: dict[date, tuple[bool, str]] = {}
    for day, name in _package.holidays.items():
        if day.weekday() < 5 and (wanted is None or day.year in wanted):
            out[day] = (False, str(name))
    for day, name in _package.workdays.items():
        if day.weekday() >= 5 and (wanted is None or day.year in wanted):
            out[day] = (True, str(name))
    return out


def _package_calendar() -> WorkCalendar:
    exceptions = package_exceptions()
    return WorkCalendar(
        version=0,
        exceptions={d: w for d, (w, _n) in exceptions.items()},
        known_years=package_years(),
        names={d: n for d, (_w, n) in exceptions.items()},
        token="package",
    )


PACKAGE = _package_calendar()


# ---------------------------------------------------------------- the database calendar

_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[object, tuple[float, WorkCalendar]] = weakref.WeakKeyDictionary()


def _engine() -> object | None:
    try:
        from server.core.db import db

        return db.engine
    except RuntimeError:  # no application context: the package alone
        return None


def load_calendar() -> WorkCalendar:
    """Read the calendar from the database (no cache)."""
    from server.core.db import db

    from .models import CalendarDay, CalendarYear, EscalationState

    state = db.session.get(EscalationState, 1)
    if state is None:
        return PACKAGE
    years = frozenset(db.session.execute(sa.select(CalendarYear.year)).scalars())
    rows = db.session.execute(
        sa.select(CalendarDay.day, CalendarDay.is_workday, CalendarDay.name)).all()
    return WorkCalendar(
        version=state.calendar_version,
        exceptions={r.day: r.is_workday for r in rows},
        known_years=years,
        names={r.day: r.name for r in rows if r.name},
        token=state.calendar_token,
    )


def current() -> WorkCalendar:
    """The calendar in force: the database's when there is an application context (cached
    per engine, re-checked every few seconds), else the package's."""
    engine = _engine()
    if engine is None:
        return PACKAGE
    now = _time.monotonic()
    with _lock:
        cached = _cache.get(engine)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    from server.core.db import db

    from .models import EscalationState

    token = db.session.execute(
        sa.select(EscalationState.calendar_token).where(EscalationState.id == 1)
    ).scalar_one_or_none() or "package"
    fresh = cached is not None and cached[1].token == token
    calendar = cached[1] if cached is not None and fresh else load_calendar()
    with _lock:
        _cache[engine] = (now, calendar)
    return calendar


def forget_cached() -> None:
    """Drop this process's cached calendar (after an edit)."""
    engine = _engine()
    if engine is not None:
        with _lock:
            _cache.pop(engine, None)


# ---------------------------------------------------------------- module-level helpers


def is_workday(day: date) -> tuple[bool, bool]:
    """(is it a working day, is that answer provisional) by the calendar in force."""
    return current().is_workday(day)


def add_working_days(start: datetime, days: int) -> tuple[datetime, bool]:
    """The deadline ``days`` working days after ``start`` by the calendar in force."""
    return current().add_working_days(start, days)


def package_is_workday(day: date) -> bool:
    """The package's own answer (raises for years it lacks): for cross-checks only."""
    return bool(chinese_calendar.is_workday(day))
