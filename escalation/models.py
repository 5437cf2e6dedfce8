"""Tables of the escalation domain: the calendar, SLA rules, clocks, the exactly-once guard,
the supervisors' board items and in-app notifications.

Escalation never imports the ticket model: tickets are referred to by id (foreign keys name
the table), and whatever a rule needs to know about a ticket is copied onto its clock when
the clock starts, so recomputing 100,000 open clocks needs no join.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import BigID, JSONType, UTCDateTime, db, utcnow


class ClockKind(StrEnum):
    """The four clocks of a handling cycle (签收, 到场, 反馈/办结, 审核)."""

    sign = "sign"
    check_in = "check_in"
    reply = "reply"
    review = "review"


CLOCK_LABELS = {
    ClockKind.sign: "签收",
    ClockKind.check_in: "到场打卡",
    ClockKind.reply: "办理反馈",
    ClockKind.review: "审核",
}


class TimeUnit(StrEnum):
    """Natural minutes and hours count every minute, holidays included; working days skip
    weekends and statutory holidays but keep adjusted working weekends."""

    minutes = "minutes"
    hours = "hours"
    working_days = "working_days"


# ---------------------------------------------------------------- calendar


class CalendarDay(db.Model):
    """A day whose status differs from the plain weekday rule: a statutory holiday on a
    weekday, or an adjusted working weekend (调休). Only exceptions are stored."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    name: Mapped[str | None] = mapped_column(sa.String(40))
    #: 'package' (seeded from chinesecalendar) or 'admin' (entered or corrected by hand).
    source: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="package")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class CalendarYear(db.Model):
    """A year whose holidays have been entered. Days in any other year are judged by
    weekends alone and marked provisional."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="package")
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class EscalationState(db.Model):
    """One row: the calendar version (stored on every clock) and cache tokens.

    Each process caches the calendar and the rules; a changed token tells it to reload.
    A missing row means the tables were never seeded: the package calendar and the built-in
    default rules apply.
    """

    __tablename__ = "escalation_state"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    calendar_version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    calendar_token: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    rules_token: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# ---------------------------------------------------------------- rules


class SlaRule(db.Model):
    """One deadline rule. Empty criteria match everything; at one scope the most specific
    matching rule wins, and across scopes the earliest deadline wins (a county may tighten
    the province's rule, never loosen it)."""

    __tablename__ = "sla_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    clock: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    #: None: the system-wide default; else a province, city or county unit.
    scope_unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("units.id"), index=True)
    ticket_type: Mapped[str | None] = mapped_column(sa.String(16))
    category_prefix: Mapped[str | None] = mapped_column(sa.String(32))
    urgency: Mapped[str | None] = mapped_column(sa.String(16))
    level: Mapped[str | None] = mapped_column(sa.String(16))
    amount: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    unit: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    #: The due-soon reminder at this share of the allowed time; 0 = none.
    due_soon_percent: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=80)
    #: How long after the previous escalation the next one goes up.
    repeat_amount: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    repeat_unit: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="working_days")
    #: The highest level the ladder climbs to ('county' or 'city'); None = remind only.
    top_level: Mapped[str | None] = mapped_column(sa.String(16), default="county")
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# ---------------------------------------------------------------- clocks


class Clock(db.Model):
    """One clock of one ticket in one cycle: sign, check-in, reply or review.

    ``seq`` numbers the clocks of a kind within a cycle: every assignment starts a new sign
    clock; a return within the grace period restarts the reply clock. At most one clock of
    each kind is open (``stopped_at`` is null) per ticket.

    ``step`` is the next rung of the ladder to fire (0 due soon, 1 overdue, 2… escalate
    again) and ``next_fire_at`` when the scan must look at the clock next; it reads only
    clocks whose ``next_fire_at`` has come, through a partial index, so its cost follows the
    tickets becoming due. The due-soon rung is the exception: a due-soon point set well ahead
    is left to the sweep (``escalation.scan``), which reads ``due_soon_at`` behind a
    :class:`ScanMark` and writes nothing to the clock, so ``next_fire_at`` is the deadline
    and ``step`` stays 0 after the reminder went (decision 20 in ``docs/decisions.md``).
    """

    __tablename__ = "clocks"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "cycle", "kind", "seq"),
        sa.Index("ix_clocks_next_fire", "next_fire_at",
                 postgresql_where=sa.text("stopped_at IS NULL AND next_fire_at IS NOT NULL"),
                 sqlite_where=sa.text("stopped_at IS NULL AND next_fire_at IS NOT NULL")),
        # The board's overdue and due-soon lists (migration 0008).
        sa.Index("ix_clocks_open_due_at", "due_at", postgresql_where=sa.text("stopped_at IS NULL"),
                 sqlite_where=sa.text("stopped_at IS NULL")),
        # The board's due-soon lists, and the due-soon sweep's keyset (migration 0010).
        sa.Index("ix_clocks_open_due_soon_at", "due_soon_at", "id",
                 postgresql_where=sa.text("stopped_at IS NULL"),
                 sqlite_where=sa.text("stopped_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: Looked up through the unique key's leading column (no index of its own: migration 0009).
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), nullable=False)
    #: The ticket's number, which never changes: what a reminder names. The scan's notices
    #: read it here rather than look up 9,000 tickets (migration 0012); null on clocks
    #: started before it, for which the ticket is asked.
    ticket_number: Mapped[str | None] = mapped_column(sa.String(24))
    cycle: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    rule_code: Mapped[str | None] = mapped_column(sa.String(64))
    calendar_version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)

    # What the rule was resolved against (copied from the ticket).
    ticket_type: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    category_code: Mapped[str | None] = mapped_column(sa.String(32))
    urgency: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    level: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    scope_path: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # Who holds the clock: the unit (and person) it is measured against.
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), nullable=False)
    unit_path: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_soon_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extended_days: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended_seconds: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stop_reason: Mapped[str | None] = mapped_column(sa.String(24))
    #: The deadline that was missed; once set, never cleared (a breach is never hidden).
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A wrong assignment returned within the grace period: not counted as late (a breach
    #: that happened stays recorded in ``breached_at``).
    excused: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    provisional: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    step: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None

    def late(self) -> bool:
        """Was (or is) this clock breached? A recorded breach stays a breach."""
        if self.excused:
            return False
        if self.breached_at is not None:
            return True
        return (self.due_at is not None and self.stopped_at is not None
                and self.stopped_at > self.due_at)


class Fired(db.Model):
    """The exactly-once guard: one row per (ticket, clock, cycle, rung, deadline) that has
    fired, inserted in the same transaction as the reminder or escalation it stands for."""

    __tablename__ = "fired"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "clock", "cycle", "rung", "deadline"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, nullable=False)
    clock: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    cycle: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    rung: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ScanMark(db.Model):
    """How far a sweep has read: the due-soon sweep has handled every open clock whose
    ``(due_soon_at, id)`` is at or before ``(through_at, through_id)``.

    Locked by the sweep for its transaction and moved on in it, so two scanners never
    sweep the same range and a crashed one leaves the mark where its last commit put it.
    """

    __tablename__ = "scan_marks"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    through_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    through_id: Mapped[int] = mapped_column(BigID, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Escalation(db.Model):
    """An item on a supervisor's board: a clock that went overdue, raised to a unit."""

    __tablename__ = "escalations"
    __table_args__ = (sa.Index("ix_escalations_unit_open", "unit_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), index=True,
                                           nullable=False)
    clock_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("clocks.id"), index=True,
                                          nullable=False)
    clock: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    cycle: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    rung: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    rule_code: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    #: The unit it was raised to, and that unit's level ("level reached").
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), nullable=False)
    level: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    #: The unit that held the ticket when it went overdue.
    from_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), nullable=False)
    event_id: Mapped[int | None] = mapped_column(BigID, sa.ForeignKey("events.id"))
    escalated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    urged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    urge_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: signed, replied, approved, closed, returned, dispatched, extended, escalated_further,
    #: rule_disabled …
    resolution: Mapped[str | None] = mapped_column(sa.String(24))

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Notification(db.Model):
    """An in-app notification (the PWA's inbox). Outbound channels (SMS webhook, Web Push)
    send one digest per person per flush for the rows not yet ``dispatched_at``."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index("ix_notifications_pending", "dispatched_at", "deliver_after"),
        sa.Index("ix_notifications_user_read", "user_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), nullable=False)
    #: due_soon, overdue, escalated, calendar_missing
    kind: Mapped[str] = mapped_column(sa.String(24), nullable=False)
    ticket_id: Mapped[int | None] = mapped_column(BigID, sa.ForeignKey("tickets.id"))
    escalation_id: Mapped[int | None] = mapped_column(BigID, sa.ForeignKey("escalations.id"))
    title: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    body: Mapped[str] = mapped_column(sa.String(500), nullable=False, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    #: Life-and-safety: sent at once, whatever the hour.
    urgent: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    #: Held to the recipient's working hours unless urgent.
    deliver_after: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: For alerts that must exist once (an administrator told once per missing year).
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(120), unique=True)
