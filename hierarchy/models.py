"""Units, users, roles and API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from server.core.crypto import Encrypted
from server.core.db import UTCDateTime, db, utcnow


class Level(StrEnum):
    province = "province"
    city = "city"
    county = "county"
    township = "township"
    village = "village"

    @property
    def depth(self) -> int:
        return list(Level).index(self) + 1

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self]


LEVEL_LABELS = {
    Level.province: "省",
    Level.city: "市",
    Level.county: "县（区）",
    Level.township: "乡镇（街道）工作站",
    Level.village: "村（社区）联系点",
}


class Role(StrEnum):
    grid_worker = "grid_worker"
    contact = "contact"
    station = "station"
    supervisor = "supervisor"
    platform = "platform"
    admin = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.grid_worker: "网格员",
    Role.contact: "村（社区）联系人",
    Role.station: "乡镇（街道）工作站",
    Role.supervisor: "县级督办",
    Role.platform: "市/省平台",
    Role.admin: "管理员",
}

#: Roles that steer tickets in their unit's subtree (dispatch, review, urge …).
STEERING_ROLES = frozenset({Role.contact, Role.station, Role.supervisor, Role.platform})

#: Werkzeug's default (scrypt) in production; the test suite swaps in a cheap method so that
#: creating a dozen users per test does not dominate its run time.
PASSWORD_METHOD = "scrypt"

# Materialised paths compare byte-wise; PostgreSQL's default collation might not.
PathType = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


class Unit(db.Model):
    """One node of the tree. ``code`` is the official division code where one exists."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    level: Mapped[Level] = mapped_column(sa.String(16), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("units.id"), index=True)
    region_code: Mapped[str | None] = mapped_column(sa.String(12), index=True)
    #: "/<root id>/…/<own id>/": a subtree is a range of paths, readable with one index scan.
    path: Mapped[str] = mapped_column(PathType, nullable=False, default="", index=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    parent: Mapped[Unit | None] = relationship(remote_side=[id], lazy="joined", innerjoin=False)

    @property
    def level_enum(self) -> Level:
        return Level(self.level)

    def is_within(self, ancestor: Unit) -> bool:
        """True when this unit is ``ancestor`` or below it."""
        return self.path.startswith(ancestor.path)

    def __repr__(self) -> str:
        return f"<Unit {self.code} {self.name}>"


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("units.id"), index=True, nullable=False)
    role: Mapped[Role] = mapped_column(sa.String(16), nullable=False)
    phone: Mapped[str | None] = mapped_column(Encrypted, nullable=True)
    #: A system account (the hotline platform, a department system) that uses API tokens.
    is_system: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}@{self.unit_id}>"


class ApiToken(db.Model):
    """A bearer token for a system; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False, default="")
    prefix: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")
