"""The phones: one row per installed app (browser profile) and user, with its last report.

A grid worker's phone keeps an offline queue in IndexedDB. The server cannot see into it,
so each device reports how long its queue is and how old its oldest item is; supervisors
then see the phones whose work is stuck (a 4xx waiting for the worker, or no connection
for hours) before the citizen calls back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hierarchy.models import User
from server.core.db import BigID, JSONType, UTCDateTime, db, utcnow


class Device(db.Model):
    """One installed copy of the phone app for one user (a shared phone has several rows)."""

    __tablename__ = "devices"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "device_uid"),
        sa.Index("ix_devices_stuck", "queue_length", "oldest_item_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True, nullable=False)
    #: A UUID the app made on first start and keeps in IndexedDB.
    device_uid: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))
    app_version: Mapped[str | None] = mapped_column(sa.String(40))
    queue_length: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: When the oldest item still in the queue was tapped (the phone's clock).
    oldest_item_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Items the server refused (a 4xx) that wait for the worker to decide.
    attention_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: A short list of what waits for attention: ticket number, action, error code.
    attention: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: Whether the browser granted persistent storage (None: not supported / not asked).
    persisted: Mapped[bool | None] = mapped_column(sa.Boolean)
    storage_usage: Mapped[int | None] = mapped_column(sa.BigInteger)
    storage_quota: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_report_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
