"""Outbound webhooks: where ticket events go (the hotline platform, department systems)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import UTCDateTime, db, utcnow


class Webhook(db.Model):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    secret: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    #: Comma-separated topic prefixes, e.g. "ticket.reply,ticket.approve"; empty = all.
    topics: Mapped[str] = mapped_column(sa.String(500), nullable=False, default="")
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    def wants(self, topic: str) -> bool:
        prefixes = [t.strip() for t in self.topics.split(",") if t.strip()]
        if not prefixes:  # catch-all: ticket events, not notices to staff (with their phones)
            return not topic.startswith("notify.")
        return any(topic.startswith(p) for p in prefixes)
