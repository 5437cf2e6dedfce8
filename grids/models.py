"""Grids, their grid workers and history; unit boundaries; the gazetteer.

A :class:`Grid` is the stable identity of a patch of ground (its code, its village, its
workers); tickets point at it and keep pointing at it when the grid is redrawn. Each drawing
is a :class:`GridVersion` with ``valid_from``/``valid_to``; the grid row carries a copy of the
current one (polygon, bounding box, hash) so matching reads one table.

:class:`GeoState` holds one random token per kind of reference data (grids, units, unit
boundaries, gazetteer). Any ORM change to those rows replaces the token in the same
transaction (see :func:`_touch_on_flush`), so every process can tell with one tiny query
whether its in-memory indexes (the STRtree, the name index) are stale.
"""

from __future__ import annotations

import time
import uuid
import weakref
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from hierarchy.models import Unit, User
from server.core.db import JSONType, UTCDateTime, db, utcnow

from .geometry import GeomType


class Grid(db.Model):
    __tablename__ = "grids"
    __table_args__ = (
        # The spatial index on PostgreSQL; on SQLite the STRtree in memory does that job and
        # the bounding-box index serves map queries ("grids in this view").
        sa.Index("ix_grids_geom", "geom", postgresql_using="gist",
                 info={"only_on": "postgresql"}).ddl_if(dialect="postgresql"),
        sa.Index("ix_grids_bbox", "min_lng", "max_lng", "min_lat", "max_lat",
                 info={"only_on": "sqlite"}).ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    #: The village or community the grid lies in.
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), index=True, nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    #: The current polygon (WGS-84); None for a grid nobody has drawn yet. Deferred: ticket
    #: lists load grids by the hundred and need only their codes.
    geom: Mapped[BaseGeometry | None] = mapped_column(GeomType, deferred=True)
    min_lng: Mapped[float | None] = mapped_column(sa.Float)
    min_lat: Mapped[float | None] = mapped_column(sa.Float)
    max_lng: Mapped[float | None] = mapped_column(sa.Float)
    max_lat: Mapped[float | None] = mapped_column(sa.Float)
    #: SHA-256 of the normalised polygon: an unchanged re-import is recognised by it.
    geom_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    #: The current :class:`GridVersion` number; 0 until a polygon is drawn.
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0,
                                         server_default="0")
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    members: Mapped[list[GridMember]] = relationship(
        back_populates="grid", order_by="GridMember.position", lazy="selectin"
    )
    versions: Mapped[list[GridVersion]] = relationship(
        back_populates="grid", order_by="GridVersion.version", lazy="select"
    )

    def on_duty_worker(self) -> User | None:
        """The worker who gets new assignments: the first on-duty member, backups last."""
        for member in self.members:
            if member.on_duty and member.user.active:
                return member.user
        return None

    def version_at(self, when: datetime) -> GridVersion | None:
        """The drawing that was in force at ``when`` (what an old ticket was matched against)."""
        for version in reversed(self.versions):
            if version.valid_from <= when and (version.valid_to is None or when < version.valid_to):
                return version
        return None

    def __repr__(self) -> str:
        return f"<Grid {self.code} v{self.version}>"


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


class GridVersion(db.Model):
    """One drawing of a grid, in force from ``valid_from`` until ``valid_to`` (None: now)."""

    __tablename__ = "grid_versions"
    __table_args__ = (sa.UniqueConstraint("grid_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(sa.ForeignKey("grids.id"), nullable=False)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), nullable=False)
    geom: Mapped[BaseGeometry] = mapped_column(GeomType, nullable=False, deferred=True)
    geom_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Where the drawing came from: an import file's name, "demo", "api" …
    source: Mapped[str] = mapped_column(sa.String(200), nullable=False, default="")

    grid: Mapped[Grid] = relationship(back_populates="versions")
    unit: Mapped[Unit] = relationship()


class UnitBoundary(db.Model):
    """The drawn boundary of a township or village, imported by administrators.

    Counties and above come from the boundaries package (:mod:`grids.boundaries`); these
    finer ones, where an administrator has them, let validation find gaps and grids that
    stray outside their village, and let matching fall back to a village or township.
    """

    __tablename__ = "unit_boundaries"
    __table_args__ = (
        sa.Index("ix_unit_boundaries_geom", "geom", postgresql_using="gist",
                 info={"only_on": "postgresql"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), unique=True, nullable=False)
    geom: Mapped[BaseGeometry] = mapped_column(GeomType, nullable=False, deferred=True)
    min_lng: Mapped[float | None] = mapped_column(sa.Float)
    min_lat: Mapped[float | None] = mapped_column(sa.Float)
    max_lng: Mapped[float | None] = mapped_column(sa.Float)
    max_lat: Mapped[float | None] = mapped_column(sa.Float)
    geom_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    source: Mapped[str] = mapped_column(sa.String(200), nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)


class GazetteerEntry(db.Model):
    """A road, community, building or landmark that addresses name, and the unit it is in.

    Administrators extend it (``yihao import gazetteer FILE``); an optional point (WGS-84)
    lets an address that names it land on a grid, not only a unit.
    """

    __tablename__ = "gazetteer"
    __table_args__ = (sa.UniqueConstraint("unit_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False, index=True)
    #: Other names the same place goes by.
    aliases: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    #: road, community, building, landmark, other.
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="landmark")
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), index=True, nullable=False)
    lng: Mapped[float | None] = mapped_column(sa.Float)
    lat: Mapped[float | None] = mapped_column(sa.Float)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)


class GeoState(db.Model):
    """One row per kind of reference data; its token changes whenever that data changes."""

    __tablename__ = "geo_state"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


#: Which models' changes invalidate which cached index.
WATCHED: dict[type, str] = {
    Grid: "grids", GridVersion: "grids", Unit: "units", UnitBoundary: "boundaries",
    GazetteerEntry: "gazetteer",
}


def touch(connection: sa.Connection | Session | Any, *names: str) -> None:
    """Give each named kind a fresh token (an upsert, so it works on an emptied table too).

    Bulk writers that bypass the ORM (benchmarks, raw SQL) must call this themselves.
    """
    if isinstance(connection, sa.Connection):
        bind = connection
    else:
        bind = connection.get_bind()
        connection.info["geo_touched"] = True
    insert: Any = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    table = GeoState.__table__
    now = utcnow()
    for name in sorted(set(names)):  # a fixed order: two writers never lock in opposite orders
        stmt = insert(table).values(name=name, token=uuid.uuid4().hex, changed_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"token": stmt.excluded.token, "changed_at": stmt.excluded.changed_at},
        )
        connection.execute(stmt)


#: How long a process trusts the tokens it read: another process's change is seen within
#: this time; this process's own changes are seen as soon as they are committed.
TOKEN_TTL_S = 1.0
_token_cache: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, str]]] = \
    weakref.WeakKeyDictionary()


def read_tokens(session: Session | Any) -> dict[str, str]:
    """The current token of each kind of reference data (cached for :data:`TOKEN_TTL_S`).

    A session that has itself changed reference data and not yet committed always reads
    them afresh, so it sees its own changes.
    """
    bind = session.get_bind()
    now = time.monotonic()
    if not session.info.get("geo_touched"):
        hit = _token_cache.get(bind)
        if hit is not None and hit[0] > now:
            return hit[1]
    rows = session.execute(sa.select(GeoState.name, GeoState.token))
    tokens = {name: token for name, token in rows}
    if not session.info.get("geo_touched"):
        _token_cache[bind] = (now + TOKEN_TTL_S, tokens)
    return tokens


def forget_tokens(bind: Any = None) -> None:
    if bind is None:
        _token_cache.clear()
    else:
        _token_cache.pop(bind, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_on_end(session: Session) -> None:
    """After a transaction that changed reference data ends, read the tokens afresh."""
    if session.info.pop("geo_touched", False):
        forget_tokens(session.get_bind())


@event.listens_for(Session, "after_flush")
def _touch_on_flush(session: Session, context: Any) -> None:
    """Replace the token of every kind of reference data this flush changed.

    Looks only at the objects this flush wrote (``context.states``), not at ``session.dirty``,
    which walks the whole identity map on every flush: a long job (the demo seed, an import)
    holding thousands of objects paid for that on each of its thousands of flushes.
    """
    changed: set[str] = set()
    for state, (is_delete, _list_only) in context.states.items():
        name = WATCHED.get(state.class_)
        if name is None or name in changed:
            continue
        obj = state.obj()
        if is_delete or state.key is None or obj is None or obj in session.new \
                or session.is_modified(obj):
            changed.add(name)
    if changed:
        session.info["geo_touched"] = True
        touch(session.connection(), *changed)
