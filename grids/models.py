"""Grids and their grid workers.

The polygon itself (GeoAlchemy2 on PostGIS, Shapely over SQLite) arrives with the grids
issue; the core needs a grid's identity, its village and who is on duty.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hierarchy.models import Unit, User
from server.core.db import UTCDateTime, db, utcnow


class Grid(db.Model):
    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    #: The village or community the grid lies in.
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), index=True, nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    members: Mapped[list[GridMember]] = relationship(
        back_populates="grid", order_by="GridMember.position", lazy="selectin"
    )

    def on_duty_worker(self) -> User | None:
        """The worker who gets new assignments: the first on-duty member, backups last."""
        for member in self.members:
            if member.on_duty and member.user.active:
                return member.user
        return None


class GridMember(db.Model):
    __tablename__ = "grid_members"
    __table_args__ = (sa.UniqueConstraint("grid_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(sa.ForeignKey("grids.id"), nullable=False)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True, nullable=False)
    #: 0 for the primary worker; backups follow.
    position: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    on_duty: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)

    grid: Mapped[Grid] = relationship(back_populates="members")
    user: Mapped[User] = relationship(lazy="joined")
