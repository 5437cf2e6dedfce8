"""The Chinese working-day calendar (Asia/Shanghai).

Statutory holidays and adjusted working weekends come from the ``chinesecalendar`` package.
It raises for any year it has no data for yet (every January, for the new year): such a day
is then judged by weekends alone and the result is marked *provisional*, never an error.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


def is_workday(day: date) -> tuple[bool, bool]:
    """(is it a working day, is that answer provisional)."""
    try:
        return bool(chinese_calendar.is_workday(day)), False
    except NotImplementedError:
        return day.weekday() < 5, True


def add_working_days(start: datetime, days: int) -> tuple[datetime, bool]:
    """The deadline ``days`` working days after ``start``; (deadline in UTC, provisional).

    Counting keeps the time of day: accepted Friday 15:00 + 1 working day → Monday 15:00.
    Accepted on a day off, the clock starts at 00:00 of the next working day, so "1 working
    day" ends with that working day.
    """
    local = start.astimezone(SHANGHAI)
    provisional = False
    workday, prov = is_workday(local.date())
    provisional |= prov
    if not workday:
        day = local.date()
        while True:
            day += timedelta(days=1)
            workday, prov = is_workday(day)
            provisional |= prov
            if workday:
                break
        local = datetime.combine(day, time(0, 0), tzinfo=SHANGHAI)
    day = local.date()
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        workday, prov = is_workday(day)
        provisional |= prov
        if workday:
            remaining -= 1
    deadline = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=SHANGHAI)
    return deadline.astimezone(UTC), provisional
