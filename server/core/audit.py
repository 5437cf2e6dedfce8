"""The audit chain: append-only, hash-chained events.

Every state change appends one :class:`Event` to a *stream* — ``ticket:<id>`` for a ticket,
``unit:<code>``, ``user:<username>`` … for administration. Each stream is its own chain
(``prev_hash`` links to the stream's previous event) so writes on different tickets never
wait for each other; the ticket row lock already orders events of one ticket. The stream's
head (last seq and hash) is kept in :class:`EventHead`, so removing the newest event is
caught as surely as altering an old one.

Hashes are HMACs with a key kept outside the database: someone who can write the database
but not read ``YIHAO_HOME`` cannot forge a consistent chain. The database itself refuses
UPDATE and DELETE on ``events`` (triggers created in the first migration).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, make_transient_to_detached, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from .aftercommit import in_session, transaction_local
from .bulk import bulk_insert, bulk_update, ids_in
from .db import BigID, JSONType, UTCDateTime, db, utcnow

GENESIS = "0" * 64
_audit_key: bytes = b""


def configure(audit_key: str) -> None:
    global _audit_key
    _audit_key = audit_key.encode()


def audit_key() -> bytes:
    if not _audit_key:
        raise RuntimeError("audit key not configured (server.core.audit.configure)")
    return _audit_key


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (sa.UniqueConstraint("stream", "seq"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    stream: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    ticket_id: Mapped[int | None] = mapped_column(
        BigID, sa.ForeignKey("tickets.id"), index=True, nullable=True
    )
    kind: Mapped[str] = mapped_column(sa.String(48), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), nullable=True)
    actor_name: Mapped[str] = mapped_column(sa.String(80), nullable=False, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)


class EventHead(db.Model):
    """The newest event of each stream, so a truncated chain is detected."""

    __tablename__ = "event_heads"

    stream: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)


#: What an event's hash covers (everything but its id and the hash itself).
_HASHED = ("stream", "seq", "ticket_id", "kind", "actor_id", "actor_name", "at", "data",
           "prev_hash")


def _canonical_values(values: Mapping[str, Any]) -> bytes:
    body = {name: values[name] for name in _HASHED}
    body["at"] = body["at"].isoformat(timespec="microseconds")
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _canonical(event: Event | sa.Row[Any]) -> bytes:
    return _canonical_values({name: getattr(event, name) for name in _HASHED})


def _hmac(canonical: bytes) -> str:
    if not _audit_key:
        raise RuntimeError("audit key not configured (server.core.audit.configure)")
    return hmac.new(_audit_key, canonical, hashlib.sha256).hexdigest()


def compute_hash(event: Event | sa.Row[Any]) -> str:
    return _hmac(_canonical(event))


def append_event(
    stream: str,
    kind: str,
    *,
    actor: Any | None,
    data: dict[str, Any] | None = None,
    ticket_id: int | None = None,
    at: datetime | None = None,
    head_locked: bool = False,
    new_stream: bool = False,
) -> Event:
    """Append one event to ``stream`` inside the caller's transaction.

    ``head_locked`` says the caller already holds a lock that orders writers of this
    stream (the ticket row lock); otherwise the head row itself is locked. ``new_stream``
    says the stream cannot exist yet (a ticket being accepted): its head is inserted without
    being looked up first, and should one exist after all, the head's primary key refuses
    the insert and the transaction fails rather than forking the chain.
    """
    session = db.session
    born: dict[str, EventHead] = transaction_local(_NEW_HEADS, dict)
    head = born.get(stream)
    if head is not None and not in_session(head):
        head = None  # a savepoint that created it was rolled back
    if head is None and not new_stream:
        head = session.get(EventHead, stream, with_for_update=not head_locked)
    if head is None:
        head = EventHead(stream=stream, seq=0, hash=GENESIS)
        session.add(head)
        if new_stream:
            born[stream] = head
    event = _chained(head, kind, actor, data, ticket_id, at or utcnow())
    # No flush: the event and its head go in with the transaction's next flush (an outbox
    # message names its event through a relationship, not an id read here). A stream begun
    # in this transaction keeps its head in memory, so a second event on it (an accept's
    # auto-dispatch) neither reads the head back nor writes it twice.
    session.add(event)
    return event


#: ``session.info`` key: the heads of streams begun in the session's transaction.
_NEW_HEADS = "audit_new_heads"


def append_events(items: list[tuple[str, str, dict[str, Any], int | None]], *,
                  actor: Any | None, at: datetime) -> list[Event]:
    """Append one event per (stream, kind, data, ticket id), set-based.

    For system jobs that change many tickets at once (the deadline scan): the heads are read
    in one statement, the events inserted in one (``server.core.bulk``: a thousand events
    through the ORM's unit of work cost more in Python than the database's work), the heads
    moved on in one or two more. The caller holds the row locks that order writers of these
    streams (the tickets'), as ``head_locked`` says for :func:`append_event`; two items on
    one stream chain one after the other. The chain and its hashes are exactly those
    :func:`append_event` would write one by one.

    The events come back in the session as if loaded (ids known, nothing left to flush);
    heads already in the session are told their new seq and hash, new ones are inserted
    (the primary key refuses a head another transaction created meanwhile, as for one).
    """
    if not items:
        return []
    session = db.session
    streams = list(dict.fromkeys(stream for stream, *_ in items))
    # Through the ORM: pending heads (append_event does not flush) are flushed first, and
    # those already in the session are the objects updated below.
    heads = {h.stream: h for h in session.execute(
        sa.select(EventHead).where(ids_in(EventHead.stream, streams))).scalars()}
    tips = {stream: (head.seq, head.hash) for stream, head in heads.items()}
    actor_id = getattr(actor, "id", None)
    actor_name = getattr(actor, "username", None) or "system"
    rows: list[dict[str, Any]] = []
    for stream, kind, data, ticket_id in items:
        seq, prev_hash = tips.get(stream, (0, GENESIS))
        row = {"stream": stream, "seq": seq + 1, "ticket_id": ticket_id, "kind": kind,
               "actor_id": actor_id, "actor_name": actor_name, "at": at,
               "data": _stored_data(data), "prev_hash": prev_hash}
        row["hash"] = _hmac(_canonical_values(row))
        tips[stream] = (row["seq"], row["hash"])
        rows.append(row)
    ids = {(r.stream, r.seq): r.id for r in bulk_insert(
        Event.__table__, rows, returning=("id", "stream", "seq"))}
    _move_heads(heads, tips)
    events = []
    for row in rows:
        event = Event(id=ids[row["stream"], row["seq"]], **row)
        make_transient_to_detached(event)
        events.append(event)
    session.add_all(events)
    return events


def _move_heads(heads: dict[str, EventHead], tips: dict[str, tuple[int, str]]) -> None:
    """Write the streams' new (seq, hash): an UPDATE for the heads that existed (and their
    objects told, without being marked changed), an INSERT for the new ones."""
    moved = [{"s": stream, "seq": tips[stream][0], "hash": tips[stream][1]}
             for stream in heads]
    bulk_update(EventHead.__table__, "stream", "s", moved,
                {"seq": ("seq", sa.Integer()), "hash": ("hash", sa.String(64))})
    for head in heads.values():
        set_committed_value(head, "seq", tips[head.stream][0])
        set_committed_value(head, "hash", tips[head.stream][1])
    bulk_insert(EventHead.__table__, [{"stream": stream, "seq": seq, "hash": hash_}
                                      for stream, (seq, hash_) in tips.items()
                                      if stream not in heads])


def _stored_data(data: dict[str, Any] | None) -> Any:
    """The event's data as the database gives it back (what the hash covers)."""
    return json.loads(json.dumps(data or {}, ensure_ascii=False, default=str))


def _chained(head: EventHead, kind: str, actor: Any | None, data: dict[str, Any] | None,
             ticket_id: int | None, when: datetime) -> Event:
    """The next event of ``head``'s stream, hashed, with the head moved on to it."""
    event = Event(
        stream=head.stream,
        seq=head.seq + 1,
        ticket_id=ticket_id,
        kind=kind,
        actor_id=getattr(actor, "id", None),
        actor_name=getattr(actor, "username", None) or "system",
        at=when,  # microsecond precision: what both databases keep
        data=_stored_data(data),
        prev_hash=head.hash,
    )
    event.hash = compute_hash(event)
    head.seq = event.seq
    head.hash = event.hash
    return event


@dataclass(frozen=True)
class BrokenLink:
    stream: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"event id {self.event_id}" if self.event_id is not None else "no row"
        return f"stream {self.stream} seq {self.seq} ({where}): {self.reason}"


@contextmanager
def _snapshot() -> Iterator[sa.Connection]:
    """A connection whose reads all see one moment, whatever commits meanwhile.

    Heads and events are read by separate statements; without one snapshot an event
    committed between the two reads looks like a chain that outgrew its head, and
    ``audit-verify`` cries tampering on a live system. PostgreSQL: REPEATABLE READ.
    SQLite: one explicit read transaction (pysqlite opens none for SELECTs).
    """
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
    else:
        with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, \
                conn.begin() as transaction:
            yield conn
            transaction.rollback()


def verify_chain(batch: int = 5000, anchors: Path | bool = True) -> Iterator[BrokenLink]:
    """Walk every stream in order and yield each broken link (the first one first).

    Catches an altered row (hash mismatch), a removed one (gap in ``seq`` or a missing
    newest event), and reordered ones (``prev_hash`` no longer links); then, against the
    anchors kept outside the database (:mod:`server.core.anchors`; ``anchors`` names the
    file, True means this installation's, False none), a newest event removed together
    with its head rewound. Reads committed data only, all of it as of one moment.
    """
    from .anchors import anchor_path, check_anchors, read_anchors

    path = anchor_path() if anchors is True else (anchors or None)
    anchored = read_anchors(path) if path is not None else {}
    with _snapshot() as conn:
        broken: set[str] = set()
        for link in _verify(conn, batch):
            broken.add(link.stream)
            yield link
        yield from check_anchors(conn, anchored, skip=broken)


def _verify(conn: sa.Connection, batch: int) -> Iterator[BrokenLink]:
    head_table, event_table = EventHead.__table__, Event.__table__
    heads = {h.stream: (h.seq, h.hash) for h in conn.execute(sa.select(head_table))}
    seen: set[str] = set()
    stream: str | None = None
    expected_seq = 1
    prev = GENESIS
    rows = conn.execute(
        sa.select(event_table).order_by(event_table.c.stream, event_table.c.seq)
        .execution_options(yield_per=batch)
    )

    def close_stream(name: str, last_seq: int, last_hash: str) -> Iterator[BrokenLink]:
        head = heads.get(name)
        if head is None:
            yield BrokenLink(name, last_seq, None, "stream has no head: head row removed")
        elif head != (last_seq, last_hash):
            yield BrokenLink(
                name, head[0], None,
                f"head says seq {head[0]} but the chain ends at seq {last_seq}: "
                "newest events removed or altered",
            )

    for event in rows:
        if event.stream != stream:
            if stream is not None:
                yield from close_stream(stream, expected_seq - 1, prev)
            stream, expected_seq, prev = event.stream, 1, GENESIS
            seen.add(stream)
        if event.seq != expected_seq:
            yield BrokenLink(stream, expected_seq, event.id,
                             f"expected seq {expected_seq}, found {event.seq}: events removed")
        elif event.prev_hash != prev:
            yield BrokenLink(stream, event.seq, event.id,
                             "prev_hash does not link to the previous event: reordered or replaced")
        elif compute_hash(event) != event.hash:
            yield BrokenLink(stream, event.seq, event.id,
                             "content does not match its hash: altered")
        expected_seq = event.seq + 1
        prev = event.hash
    if stream is not None:
        yield from close_stream(stream, expected_seq - 1, prev)
    for name, (seq, _hash) in sorted(heads.items()):
        if name not in seen and seq > 0:
            yield BrokenLink(name, 1, None, f"head says seq {seq} but no events remain: removed")


APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
]
APPEND_ONLY_POSTGRES = [
    """CREATE OR REPLACE FUNCTION yihao_events_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'events are append-only' USING ERRCODE = 'insufficient_privilege';
    END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION yihao_events_append_only()",
    "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION yihao_events_append_only()",
]
