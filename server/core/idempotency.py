"""``Idempotency-Key``: a repeated request returns the first result and changes nothing.

The phone gives every action a UUID when the worker taps; it may send it many times (offline
replays, lost answers). The key row is inserted *first* in the request's transaction: a
concurrent duplicate blocks on the unique index until the first commits, then fails, and is
answered with the stored result. A failed request rolls back its key, so a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from .db import BigID, JSONType, UTCDateTime, db, utcnow
from .errors import InvalidInput

MAX_KEY_LENGTH = 128


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), nullable=False)
    key: Mapped[str] = mapped_column(sa.String(MAX_KEY_LENGTH), nullable=False)
    request_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, index=True
    )


def request_fingerprint(method: str, path: str, body: Any) -> str:
    raw = json.dumps([method, path, body], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def validate_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            code="invalid_idempotency_key",
        )
    return key


def find(user_id: int, key: str) -> IdempotencyKey | None:
    return db.session.execute(
        sa.select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
        )
    ).scalar_one_or_none()


def claim(user_id: int, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Insert the key row now; None when the key is taken (the caller then replays).

    One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` instead of a SELECT then an INSERT:
    a key held by a concurrent request still makes this wait on the unique index until that
    request commits (nothing inserted: None) or rolls back (inserted here). Other databases
    insert plainly and raise IntegrityError when the key is taken.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        row = IdempotencyKey(user_id=user_id, key=key, request_hash=fingerprint)
        db.session.add(row)
        db.session.flush()
        return row
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(IdempotencyKey)
        .values(user_id=user_id, key=key, request_hash=fingerprint, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyKey)
    )
    return db.session.execute(statement).scalars().first()
