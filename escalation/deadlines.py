"""Default deadlines when a ticket is accepted or assigned.

Defaults follow the published local rules the escalation issue cites: sign within 15
minutes when life or property is threatened (emergency), 30 minutes for urgent outages
(natural time, holidays included), otherwise within 1 working day; handle within 5 working
days. Configurable rules per level replace these with the escalation module's rule table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .calendar import add_working_days

RESPONSE_MINUTES = {"emergency": 15, "urgent": 30}
RESPONSE_WORKING_DAYS = 1
HANDLING_WORKING_DAYS = 5
EMERGENCY_HANDLING_HOURS = 24


@dataclass(frozen=True)
class Deadlines:
    response_due: datetime
    handling_due: datetime
    provisional: bool


def response_due(urgency: str, start: datetime) -> tuple[datetime, bool]:
    minutes = RESPONSE_MINUTES.get(urgency)
    if minutes is not None:
        return start + timedelta(minutes=minutes), False
    return add_working_days(start, RESPONSE_WORKING_DAYS)


def initial_deadlines(urgency: str, start: datetime) -> Deadlines:
    respond, p1 = response_due(urgency, start)
    if urgency == "emergency":
        handle, p2 = start + timedelta(hours=EMERGENCY_HANDLING_HOURS), False
    else:
        handle, p2 = add_working_days(start, HANDLING_WORKING_DAYS)
    return Deadlines(respond, handle, p1 or p2)


def extend(deadline: datetime, working_days: int) -> tuple[datetime, bool]:
    return add_working_days(deadline, working_days)
