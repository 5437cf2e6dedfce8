"""The transactional outbox: messages for other systems written in the same transaction
as the change they describe, delivered by RQ jobs after the commit.

A message is never lost (it is a row committed with the change) and never sent for a change
that rolled back. Delivery is at-least-once; receivers de-duplicate by the message ``id``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .aftercommit import on_commit, transaction_local
from .audit import Event
from .bulk import bulk_insert
from .db import BigID, JSONType, UTCDateTime, db, utcnow

#: Called after commit with the new message ids; the app installs one that enqueues an RQ job.
_dispatcher: Any = None


def set_dispatcher(func: Any) -> None:
    global _dispatcher
    _dispatcher = func


class RetryLater(Exception):
    """Raised by a topic handler: this message is not (fully) delivered yet; try again
    after the usual back-off. What the handler recorded before raising is kept."""


#: Topics delivered by code in this process rather than (only) by webhooks, e.g. Web Push:
#: {topic: handler(message)}. A handler raises :class:`RetryLater` (or ``OSError``) to retry.
_handlers: dict[str, Callable[[OutboxMessage], None]] = {}


def register_handler(topic: str, handler: Callable[[OutboxMessage], None]) -> None:
    _handlers[topic] = handler


def handler_for(topic: str) -> Callable[[OutboxMessage], None] | None:
    return _handlers.get(topic)


class OutboxMessage(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_pending", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    topic: Mapped[str] = mapped_column(sa.String(48), nullable=False)
    ticket_id: Mapped[int | None] = mapped_column(BigID, sa.ForeignKey("tickets.id"), nullable=True)
    event_id: Mapped[int | None] = mapped_column(BigID, sa.ForeignKey("events.id"), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    event: Mapped[Event | None] = relationship(Event, lazy="raise_on_sql")


def queue_message(
    topic: str, payload: dict[str, Any], *, ticket_id: int | None = None, event: Any = None
) -> OutboxMessage:
    """Add a message in the caller's transaction; its delivery job is sent after commit."""
    message = OutboxMessage(topic=topic, payload=payload, ticket_id=ticket_id)
    if event is not None:
        # By the object: the event may not have been flushed yet (append_event does not
        # flush), and the unit of work fills in its id.
        message.event = event
    db.session.add(message)
    # No flush here: the row goes in with the commit's flush, and its id is read from the
    # identity map once committed (one ORM flush less per action; bench/intake.py).
    _pending().append(sa.inspect(message))
    return message


def queue_messages(messages: list[dict[str, Any]]) -> None:
    """Many messages at once (a batch job's actions: the deadline scan's escalations), in
    one statement instead of an ORM object each; one delivery job after commit, as for
    :func:`queue_message`. Each dict: ``topic``, ``payload``, ``ticket_id``, ``event_id``."""
    if not messages:
        return
    now = utcnow()
    rows = [{**m, "created_at": now, "next_attempt_at": now, "attempts": 0} for m in messages]
    inserted = bulk_insert(OutboxMessage.__table__, rows, returning=("id",))
    _pending().extend(row.id for row in inserted)


#: ``session.info`` key: the messages this transaction added — ORM states (their ids known
#: once flushed) and ids of rows inserted set-based.
_PENDING = "outbox_pending"


def _pending() -> list[Any]:
    """This transaction's new messages; the first one arranges the one delivery job."""
    pending: list[Any] = transaction_local(_PENDING, list)
    if not pending:
        # One delivery job per transaction, for all its messages (an accept that is also
        # auto-dispatched writes two; a scan group, a hundred).
        on_commit(_dispatch_pending(pending))
    return pending


def _dispatch_pending(pending: list[Any]) -> Callable[[], None]:
    def dispatch() -> None:
        ids = [p if isinstance(p, int) else p.identity[0] for p in pending
               if isinstance(p, int) or p.identity is not None]
        if _dispatcher is not None and ids:
            _dispatcher(sorted(ids))

    return dispatch
