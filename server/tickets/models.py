"""The ticket and what hangs off it: check-ins and photos."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from escalation.models import Clock
from grids.models import Grid
from hierarchy.models import Unit, User
from routing.models import EmergencyHandoff, TicketLink
from server.core.audit import Event
from server.core.crypto import Encrypted
from server.core.db import BigID, JSONType, UTCDateTime, db, utcnow
from server.core.outbox import OutboxMessage


class Status(StrEnum):
    accepted = "accepted"
    assigned = "assigned"
    in_progress = "in_progress"
    on_site = "on_site"
    replied = "replied"
    closed = "closed"


STATUS_LABELS = {
    Status.accepted: "已受理",
    Status.assigned: "已派发",
    Status.in_progress: "办理中",
    Status.on_site: "已到场",
    Status.replied: "已反馈待审核",
    Status.closed: "已办结",
}
OPEN_STATUSES = tuple(s for s in Status if s is not Status.closed)


class Source(StrEnum):
    hotline = "hotline"
    patrol = "patrol"
    web = "web"
    app = "app"
    api = "api"


class TicketType(StrEnum):
    consultation = "consultation"
    help = "help"
    complaint = "complaint"
    report = "report"
    suggestion = "suggestion"


TYPE_LABELS = {
    TicketType.consultation: "咨询",
    TicketType.help: "求助",
    TicketType.complaint: "投诉",
    TicketType.report: "举报",
    TicketType.suggestion: "建议",
}


class Urgency(StrEnum):
    normal = "normal"
    urgent = "urgent"
    emergency = "emergency"


URGENCY_LABELS = {Urgency.normal: "一般", Urgency.urgent: "紧急", Urgency.emergency: "特急"}


class Resolution(StrEnum):
    resolved = "resolved"
    partially = "partially"
    unresolved = "unresolved"
    explained = "explained"


class Satisfaction(StrEnum):
    satisfied = "satisfied"
    basic = "basic"
    unsatisfied = "unsatisfied"


class Crs(StrEnum):
    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.UniqueConstraint("created_by_id", "external_id"),
        sa.Index("ix_tickets_unit_status", "unit_id", "status"),
        sa.Index("ix_tickets_assignee_status", "assignee_id", "status"),
        sa.Index("ix_tickets_status_handling_due", "status", "handling_due"),
        # Open tickets per grid in a subtree, and how many overdue (the map; migration 0008).
        sa.Index("ix_tickets_unit_status_grid", "unit_id", "status", "grid_id", "handling_due"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: Human-readable, unique, derived from the id so it needs no shared counter.
    number: Mapped[str | None] = mapped_column(sa.String(24), unique=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[Source] = mapped_column(sa.String(16), nullable=False)
    type: Mapped[TicketType] = mapped_column(sa.String(16), nullable=False)
    title: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    content: Mapped[str] = mapped_column(sa.Text, nullable=False)
    category_code: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    urgency: Mapped[Urgency] = mapped_column(sa.String(16), nullable=False, default=Urgency.normal)
    status: Mapped[Status] = mapped_column(sa.String(16), nullable=False, default=Status.accepted)

    lng: Mapped[float | None] = mapped_column(sa.Float)
    lat: Mapped[float | None] = mapped_column(sa.Float)
    location_crs: Mapped[str | None] = mapped_column(sa.String(8))
    address: Mapped[str | None] = mapped_column(sa.String(300))
    region_code: Mapped[str | None] = mapped_column(sa.String(12))
    grid_id: Mapped[int | None] = mapped_column(sa.ForeignKey("grids.id"), index=True)
    grid_reason: Mapped[str | None] = mapped_column(sa.String(200))

    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), nullable=False)
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    dispatched_by_unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("units.id"))
    accepting_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), nullable=False)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), nullable=False)

    reporter_name: Mapped[str | None] = mapped_column(Encrypted)
    reporter_phone: Mapped[str | None] = mapped_column(Encrypted)
    reporter_phone_index: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    reporter_anonymous: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)

    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    response_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handling_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_provisional: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    reply_result: Mapped[str | None] = mapped_column(sa.Text)
    reply_resolution: Mapped[str | None] = mapped_column(sa.String(16))
    extension_days_requested: Mapped[int | None] = mapped_column(sa.Integer)
    extension_reason: Mapped[str | None] = mapped_column(sa.String(500))
    extension_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    urge_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    followup_reached: Mapped[bool | None] = mapped_column(sa.Boolean)
    satisfaction: Mapped[str | None] = mapped_column(sa.String(16))
    followup_comment: Mapped[str | None] = mapped_column(sa.Text)
    followed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopen_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)

    # ---- smart routing (issue 6, routing/): why this category, how sure, how many others
    #: Probability of the level-1 category (1.0 when a person set or corrected it).
    category_confidence: Mapped[float | None] = mapped_column(sa.Float)
    #: Who decided the category: operator, model, keywords or correction.
    category_source: Mapped[str | None] = mapped_column(sa.String(16))
    #: Words and similar past tickets that explain the category (routing.classifier.Guess).
    category_explanation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: "N other reports": open tickets linked to this one as the same problem.
    duplicate_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0,
                                                 server_default="0")
    #: Set when this ticket was merged into an older one reporting the same problem.
    duplicate_of_id: Mapped[int | None] = mapped_column(BigID, sa.ForeignKey("tickets.id"))
    #: Emergency services this ticket was (or must be) handed to, e.g. "119,120".
    emergency_services: Mapped[str | None] = mapped_column(sa.String(32))

    #: Number of events on the ticket: what ``base_version`` is compared with.
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    unit: Mapped[Unit] = relationship(foreign_keys=[unit_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    grid: Mapped[Grid | None] = relationship()
    dispatched_by_unit: Mapped[Unit | None] = relationship(foreign_keys=[dispatched_by_unit_id])
    accepting_unit: Mapped[Unit] = relationship(foreign_keys=[accepting_unit_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])

    # The rows that name a ticket by id but are written by other modules (which never see
    # this model). These relationships are never loaded or assigned (``lazy="raise"``;
    # deleting a ticket leaves them to the database): they exist so that the unit of work
    # knows to insert a new ticket before them. An accept then writes its ticket, links,
    # clocks, events and outbox messages — and its auto-dispatch's — in one flush, in their
    # final state (bench/intake.py), instead of flushing the ticket first and updating it.
    _links: Mapped[list[TicketLink]] = relationship(
        foreign_keys=[TicketLink.ticket_id], lazy="raise", passive_deletes="all")
    _handoffs: Mapped[list[EmergencyHandoff]] = relationship(
        lazy="raise", passive_deletes="all")
    _clocks: Mapped[list[Clock]] = relationship(lazy="raise", passive_deletes="all")
    _events: Mapped[list[Event]] = relationship(lazy="raise", passive_deletes="all")
    _outbox: Mapped[list[OutboxMessage]] = relationship(lazy="raise", passive_deletes="all")

    @property
    def stream(self) -> str:
        return f"ticket:{self.id}"

    @property
    def is_open(self) -> bool:
        return self.status != Status.closed

    def __repr__(self) -> str:
        return f"<Ticket {self.number} {self.status}>"


class CheckIn(db.Model):
    """One GPS check-in attempt, kept whatever its verdict."""

    __tablename__ = "check_ins"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), nullable=False)
    lng: Mapped[float] = mapped_column(sa.Float, nullable=False)
    lat: Mapped[float] = mapped_column(sa.Float, nullable=False)
    crs: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    accuracy_m: Mapped[float | None] = mapped_column(sa.Float)
    fix_age_s: Mapped[float | None] = mapped_column(sa.Float)
    distance_m: Mapped[float | None] = mapped_column(sa.Float)
    #: accepted, warning (accepted, but the station should look) or refused (recorded only).
    verdict: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    #: Why, as stable codes (:mod:`grids.checkin`): zero_accuracy, fix_too_old, outside_area …
    flags: Mapped[list[str] | None] = mapped_column(JSONType)
    reason: Mapped[str | None] = mapped_column(sa.String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Photo(db.Model):
    """A photo on a ticket. The original file is kept byte for byte (EXIF included)."""

    __tablename__ = "photos"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "sha256"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), index=True)
    uploaded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), nullable=False)
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    width: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    height: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lng: Mapped[float | None] = mapped_column(sa.Float)
    lat: Mapped[float | None] = mapped_column(sa.Float)
    storage_key: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
