"""Notifications through one channel interface.

Every notice is first a row in ``notifications`` — the in-app inbox the PWA reads. Outbound
channels (an SMS gateway behind an outbound webhook; Web Push, registered by
``escalation/push.py``) then send **one digest per person per flush** for that person's rows not yet
dispatched: a worker with twenty due tickets gets one message, not twenty.

Reminders wait for the recipient's working hours (08:30–17:30 on a working day, Shanghai),
except for life-and-safety (emergency) tickets, which go at once.

Exactly once: a row is marked ``dispatched_at`` in the same transaction as the outbox message
its channel queues, and rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hierarchy.models import Role, User
from server.core.aftercommit import on_commit
from server.core.bulk import bulk_insert, ids_in
from server.core.db import db
from server.core.outbox import queue_message

from . import calendar as cal_mod
from .models import Notification

log = logging.getLogger(__name__)

STEERING = (Role.contact, Role.station, Role.supervisor, Role.platform)
HANDLING = STEERING
SMS_TOPIC = "notify.sms"


@dataclass(frozen=True)
class Digest:
    """What a channel sends to one person: their pending notices, summed up."""

    user: User
    #: Pending notices (rows with id, kind, title, body, data, urgent).
    items: Sequence[Any]

    @staticmethod
    def count_of(item: Any) -> int:
        return int((item.data or {}).get("count") or 1)

    @property
    def text(self) -> str:
        total = sum(self.count_of(i) for i in self.items)
        if len(self.items) == 1 and total == 1:
            only = self.items[0]
            return f"【一号】{only.title}" + (f"：{only.body}" if only.body else "")
        kinds: dict[str, int] = {}
        for item in self.items:
            kinds[item.kind] = kinds.get(item.kind, 0) + self.count_of(item)
        parts = [f"{KIND_LABELS.get(k, k)}{n}件" for k, n in sorted(kinds.items())]
        return f"【一号】您有{total}条工单提醒（{'，'.join(parts)}），请登录查看。"

    def payload(self) -> dict[str, Any]:
        return {
            "user": self.user.username,
            "text": self.text,
            "count": sum(self.count_of(i) for i in self.items),
            "items": [{"id": n.id, "kind": n.kind, "title": n.title,
                       "tickets": (n.data or {}).get("numbers")
                       or [(n.data or {}).get("number")]} for n in self.items],
        }


KIND_LABELS = {"due_soon": "即将超时", "overdue": "已超时", "escalated": "升级督办",
               "calendar_missing": "日历缺失", "assigned": "新派工单", "urged": "督办催办"}


class Channel(Protocol):
    """An outbound channel. ``send`` runs inside the flush transaction and must only queue
    (an outbox message, a job after commit), never call out directly. It gets all the
    digests of one flush at once, so that what it looks up (who has a phone, a device) is
    one query, not one per person. A channel may set ``urgent_only_now = True`` to take
    only the urgent ones of the notices :func:`send_now` sends at once."""

    name: str

    def send(self, digests: Sequence[Digest]) -> None: ...


class SmsWebhookChannel:
    """SMS through a gateway that receives outbound webhooks on topic ``notify.sms``."""

    name = "sms"
    #: Of the notices sent at once (:func:`send_now`), only urgent ones: a text per
    #: assignment costs money and attention; Web Push and the live stream carry the rest.
    urgent_only_now = True

    def send(self, digests: Sequence[Digest]) -> None:
        for digest in digests:
            if digest.user.phone:
                queue_message(SMS_TOPIC, {**digest.payload(), "phone": digest.user.phone})


CHANNELS: list[Channel] = [SmsWebhookChannel()]


def register_channel(channel: Channel) -> None:
    """Add an outbound channel (the PWA registers Web Push here)."""
    if all(c.name != channel.name for c in CHANNELS):
        CHANNELS.append(channel)


# ---------------------------------------------------------------- creating notices


def deliver_after(at: datetime, urgent: bool,
                  calendar: cal_mod.WorkCalendar | None = None) -> datetime:
    """When a notice created at ``at`` may go out: at once for life-and-safety, else at the
    start of the next working hours."""
    if urgent:
        return at
    return (calendar or cal_mod.current()).work_hours_start(at)[0]


def _insert(rows: list[dict[str, Any]], *, ignore_duplicates: bool = False) -> None:
    if not rows:
        return
    if ignore_duplicates:
        dialect = db.engine.dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Notification)
        db.session.execute(insert.on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)
    else:
        bulk_insert(Notification.__table__, rows)


def notice_rows(user_ids: Iterable[int], *, kind: str, at: datetime, title: str, body: str = "",
                ticket_id: int | None = None, escalation_id: int | None = None,
                data: dict[str, Any] | None = None, urgent: bool = False,
                calendar: cal_mod.WorkCalendar | None = None) -> list[dict[str, Any]]:
    when = deliver_after(at, urgent, calendar)
    return [
        {"user_id": uid, "kind": kind, "ticket_id": ticket_id, "escalation_id": escalation_id,
         "title": title[:200], "body": body[:500], "data": data or {}, "urgent": urgent,
         "created_at": at, "deliver_after": when, "dispatched_at": None, "read_at": None,
         "dedupe_key": None}
        for uid in dict.fromkeys(user_ids)
    ]


def notify(user_ids: Iterable[int], **kwargs: Any) -> None:
    """Add in-app notices (one per user) in the caller's transaction."""
    _insert(notice_rows(user_ids, **kwargs))


def insert_notices(rows: list[dict[str, Any]]) -> None:
    """Add many :func:`notice_rows` at once (one statement), in the caller's transaction."""
    _insert(rows)


def staff_of(unit_ids: Iterable[int], roles: Sequence[Role] = STEERING) -> dict[int, list[int]]:
    """{unit id: [active user ids with one of ``roles``]} in one query."""
    ids = list(dict.fromkeys(unit_ids))
    if not ids:
        return {}
    out: dict[int, list[int]] = {u: [] for u in ids}
    rows = db.session.execute(
        sa.select(User.unit_id, User.id).where(
            User.unit_id.in_(ids), User.role.in_([str(r) for r in roles]),
            User.active.is_(True), User.is_system.is_(False))
        .order_by(User.id)
    ).all()
    for unit_id, user_id in rows:
        out[unit_id].append(user_id)
    return out


#: Years each database's administrators were already told about (after commit only).
_alerted: weakref.WeakKeyDictionary[object, set[int]] = weakref.WeakKeyDictionary()


def alert_missing_years(years: Sequence[int], at: datetime) -> None:
    """Tell every administrator, once per year, that deadlines reach into a year whose
    holidays nobody has entered (they are provisional until someone does)."""
    engine = db.engine
    done = _alerted.setdefault(engine, set())
    todo = [y for y in years if y not in done]
    if not todo:
        return
    admins = db.session.execute(
        sa.select(User.id).where(User.role == Role.admin, User.active.is_(True))
    ).scalars().all()
    rows = []
    for year in todo:
        for uid in admins:
            rows += [{**r, "dedupe_key": f"calendar-missing:{year}:{uid}"} for r in notice_rows(
                [uid], kind="calendar_missing", at=at, urgent=True,
                title=f"{year}年节假日安排尚未录入",
                body=f"部分时限计入了{year}年，暂按周末计算（临时时限）；录入该年节假日后将自动重算。",
                data={"year": year})]
    _insert(rows, ignore_duplicates=True)
    on_commit(lambda: done.update(todo))


# ---------------------------------------------------------------- sent at once


def send_now(user_ids: Iterable[int], *, kind: str, at: datetime, title: str, body: str = "",
             ticket_id: int | None = None, data: dict[str, Any] | None = None,
             urgent: bool = False) -> int:
    """Notices a person's action causes now (a new assignment, an urge), in the caller's
    transaction. They are not reminders: never held to working hours, never batched with
    later ones — each goes out as its own digest through every channel at once (an
    ``urgent_only_now`` channel, SMS, only when urgent), and is marked dispatched in the same
    transaction, so the flush never sends it again. Returns the number of digests."""
    rows = notice_rows(user_ids, kind=kind, at=at, title=title, body=body, ticket_id=ticket_id,
                       data=data, urgent=True)
    if not rows:
        return 0
    for row in rows:
        row.update(urgent=urgent, dispatched_at=at)
    c = Notification.__table__.c
    inserted = db.session.execute(
        sa.insert(Notification.__table__).returning(c.id, c.user_id, c.kind, c.title, c.body,
                                                    c.data, c.urgent), rows).all()
    users = {u.id: u for u in db.session.execute(
        sa.select(User).where(User.id.in_([r.user_id for r in inserted]))).scalars()}
    digests = [Digest(users[note.user_id], [note]) for note in inserted
               if note.user_id in users and users[note.user_id].active]
    for channel in CHANNELS:
        if digests and (urgent or not getattr(channel, "urgent_only_now", False)):
            channel.send(digests)
    return len(digests)


# ---------------------------------------------------------------- flushing


def flush(now: datetime, limit: int = 20_000) -> int:
    """Send each person one digest of their pending notices through every outbound channel,
    and mark them dispatched — in the caller's transaction. Returns the number of digests."""
    table = Notification.__table__
    c = table.c
    query = (
        sa.select(c.id, c.user_id, c.kind, c.title, c.body, c.data, c.urgent)
        .where(c.dispatched_at.is_(None), c.deliver_after <= now)
        .order_by(c.user_id, c.id)
        .limit(limit)
    )
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    pending = db.session.execute(query).all()
    if not pending:
        return 0
    by_user: dict[int, list[Any]] = {}
    for note in pending:
        by_user.setdefault(note.user_id, []).append(note)
    users = {u.id: u for u in db.session.execute(
        sa.select(User).where(User.id.in_(list(by_user)))).scalars()}
    digests = [Digest(users[user_id], items) for user_id, items in by_user.items()
               if user_id in users and users[user_id].active]
    for channel in CHANNELS:
        if digests:
            channel.send(digests)
    ids = [n.id for n in pending]
    for start in range(0, len(ids), 5000):
        db.session.execute(sa.update(table).where(ids_in(c.id, ids[start:start + 5000]))
                           .values(dispatched_at=now))
    return len(digests)
