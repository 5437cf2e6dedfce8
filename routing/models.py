"""Tables of smart routing: trained models, staff corrections, duplicate links and
emergency hand-offs. (The ticket's own routing fields — confidence, explanation, the
"N other reports" counter — are columns of ``tickets``.)"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import BigID, JSONType, UTCDateTime, db, utcnow


class RoutingModel(db.Model):
    """One trained category model: the file under ``YIHAO_HOME/models`` and how good it was
    on held-out tickets. At most one is active; a new one replaces it only when better."""

    __tablename__ = "routing_models"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, unique=True)
    path: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    #: The file's SHA-256: a model file is only unpickled when it is exactly the one trained.
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    n_train: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    n_corrections: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    decision: Mapped[str] = mapped_column(sa.String(300), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CategoryCorrection(db.Model):
    """A person changed a ticket's category: the label the next model learns from."""

    __tablename__ = "category_corrections"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), nullable=False,
                                           index=True)
    from_code: Mapped[str | None] = mapped_column(sa.String(32))
    to_code: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    from_source: Mapped[str | None] = mapped_column(sa.String(16))
    model_version: Mapped[int | None] = mapped_column(sa.Integer)
    actor_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), nullable=False)
    note: Mapped[str | None] = mapped_column(sa.String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class LinkStatus(StrEnum):
    proposed = "proposed"  # found at accept; a person has not looked yet
    linked = "linked"  # confirmed: the same problem, both stay open and are handled together
    merged = "merged"  # the newer ticket was closed into the older one
    dismissed = "dismissed"  # not the same problem


#: Links that count as "N other reports".
COUNTED_LINKS = (LinkStatus.proposed, LinkStatus.linked, LinkStatus.merged)


class TicketLink(db.Model):
    """A possible duplicate: ``ticket`` (the newer) reports what ``other`` (older) reports."""

    __tablename__ = "ticket_links"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "other_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), nullable=False,
                                           index=True)
    other_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), nullable=False,
                                          index=True)
    score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    text_score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    distance_m: Mapped[float | None] = mapped_column(sa.Float)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=LinkStatus.proposed)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


EMERGENCY_SERVICES = {
    "110": "公安（110）",
    "119": "消防救援（119）",
    "120": "医疗急救（120）",
    "122": "交通事故（122）",
}


class EmergencyHandoff(db.Model):
    """An emergency seen in a ticket and its hand-off to 110/119/120/122.

    Detection at accept writes a ``pending`` row (what was seen, which services); the
    operator who makes the call records it (``handed_off``, with the other side's reference).
    """

    __tablename__ = "emergency_handoffs"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("tickets.id"), nullable=False,
                                           index=True)
    services: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    signals: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="pending")
    detected: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    reference: Mapped[str | None] = mapped_column(sa.String(64))
    note: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handed_off_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
