"""Background jobs on RQ: outbox delivery now; deadline scans join with escalation.

Jobs take ids, never ORM objects, and are idempotent in the database: a message is marked
sent in the same transaction that records its delivery, and the sweeper picks only unsent
rows with ``FOR UPDATE SKIP LOCKED``, so two workers never deliver one message twice at
once, and a crashed worker's messages are picked up again.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app
from rq import Queue
from sqlalchemy.orm.util import identity_key

from server.core import outbox
from server.core.db import db, utcnow
from server.core.outbox import OutboxMessage

log = logging.getLogger(__name__)
QUEUE_NAME = "yihao"
MAX_ATTEMPTS = 12
_worker_app: Flask | None = None


#: One Redis client per URL per process, and the embedded Redis's URL once it answered. A new
#: client per enqueue cost a socket, RQ's INFO round trip (cached per client) and, embedded, a
#: PING: 1.3 to 2.7 ms of CPU per accepted ticket (bench/intake.py). redis-py's pool notices a
#: fork and opens fresh sockets in the child.
_clients: dict[str, redis.Redis] = {}
_embedded_urls: dict[str, str] = {}


def redis_url(app: Flask | None = None) -> str:
    app = app or current_app
    configured = app.config.get("YIHAO_REDIS_URL")
    if configured:
        return str(configured)
    home = str(app.config["YIHAO_HOME"])
    url = _embedded_urls.get(home)
    if url is None:
        from .embedded_redis import ensure_running

        url = _embedded_urls[home] = ensure_running(Path(home))
    return url


def connection(app: Flask | None = None) -> redis.Redis:
    url = redis_url(app)
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def forget_connections() -> None:
    """Drop the cached clients (after a Redis error: the embedded one may need a restart)."""
    _clients.clear()
    _embedded_urls.clear()


def queue(app: Flask | None = None) -> Queue:
    return Queue(QUEUE_NAME, connection=connection(app))


def _enqueue_delivery(ids: list[int]) -> None:
    """After commit: hand the new messages to a worker. Failure only delays them: the
    periodic sweep delivers whatever is still unsent."""
    if not current_app.config.get("YIHAO_JOBS_ENABLED", True):
        return
    try:
        queue().enqueue(deliver_outbox, ids, job_timeout=120)
    except (redis.RedisError, OSError, RuntimeError) as exc:
        forget_connections()
        log.warning("could not enqueue outbox delivery (the sweep will): %s", exc)


def init_app(app: Flask) -> None:
    outbox.set_dispatcher(_enqueue_delivery)


def worker_app() -> Flask:
    """The app a worker process runs jobs in (created once per process)."""
    global _worker_app
    if _worker_app is None:
        from .app import create_app

        _worker_app = create_app()
    return _worker_app


def _sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, secret: str, message: OutboxMessage) -> None:
    body = json.dumps({"id": message.id, "topic": message.topic, "payload": message.payload},
                      ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Yihao-Message": str(message.id),
        "X-Yihao-Signature": "sha256=" + _sign(secret, body),
    })
    with urllib.request.urlopen(request, timeout=10) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not 2xx", response.headers, None)


def deliver_pending(ids: list[int] | None = None, limit: int = 200) -> int:
    """Deliver unsent messages (those named, or any that are due); returns how many were sent."""
    from .webhooks import Webhook

    now = utcnow()
    query = sa.select(OutboxMessage).where(
        OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now,
        OutboxMessage.attempts < MAX_ATTEMPTS,
    ).order_by(OutboxMessage.id).limit(limit)
    if ids:
        query = query.where(OutboxMessage.id.in_(ids))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    messages = db.session.execute(query).scalars().all()
    hooks = db.session.execute(sa.select(Webhook).where(Webhook.active.is_(True))).scalars().all()
    sent = 0
    for message in messages:
        targets = [h for h in hooks if h.wants(message.topic)]
        try:
            for hook in targets:
                _post(hook.url, hook.secret, message)
            # Topics delivered in-process (Web Push: escalation/push.py).
            if (handler := outbox.handler_for(message.topic)) is not None:
                handler(message)
        except (urllib.error.URLError, OSError, ValueError, outbox.RetryLater) as exc:
            message.attempts += 1
            message.last_error = str(exc)[:500]
            message.next_attempt_at = now + timedelta(seconds=min(3600, 15 * 2 ** message.attempts))
            continue
        message.sent_at = now
        message.attempts += 1
        sent += 1
    db.session.commit()
    return sent


def deliver_outbox(ids: list[int] | None = None) -> int:
    """RQ job: deliver these outbox messages (or every due one)."""
    with worker_app().app_context():
        return deliver_pending(ids)


@dataclass(frozen=True)
class Periodic:
    name: str
    func: Callable[..., Any]
    seconds: int


# ---------------------------------------------------------------- deadlines and escalation


@dataclass
class ScanReport:
    """What one deadline scan did (also the benchmark's and the tests' view of it)."""

    due_soon: int = 0
    escalated: int = 0
    already_fired: int = 0
    skipped: int = 0
    digests: int = 0
    seconds: float = 0.0
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextmanager
def _heap_set_aside() -> Iterator[None]:
    """Keep what the process held before the scan out of the collector's full passes while
    the scan runs (``gc.freeze``), and hand it back afterwards (``gc.unfreeze``; both are
    O(1)): garbage among it waits for the end of the scan, no longer.

    A scan group builds thousands of objects (a hundred tickets, their events, rows), which
    sets off CPython's full collections; each one walks every object of the process — for
    a worker ≈200,000: the app, the models, SQLAlchemy's caches — ≈50 ms a time, three or
    four times for 1,000 escalations (≈170 ms of ≈1 s, 1M open tickets on PostgreSQL).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_heap_set_aside()
def run_scan(now: datetime | None = None, *, batch: int = 500, reminder_batch: int = 5000,
             time_budget: float = 50.0, commit_every: int = 500,
             after_each: Callable[[int], None] | None = None) -> ScanReport:
    """One deadline scan at ``now``: due-soon reminders in bulk (the clocks whose own firing
    time has come, then the sweep of due-soon points since its mark), then the overdue rungs in
    groups of ``commit_every`` tickets under their row locks (``check_escalate_many`` /
    ``do_escalate_many``: a few statements a group, not a dozen a ticket), then the digests.

    Each group commits on its own, so a worker killed mid-scan loses only its uncommitted
    group, which the next scan redoes; what did commit is in ``fired`` and is never redone.
    A group of 500 holds its tickets' row locks for about a quarter of a second (someone
    acting on one of them waits that long; on SQLite every writer does) and costs a
    fifth less than five groups of 100, whose dozen statements each are paid five times
    (``docs/performance.md``, escalation, session 6).
    ``after_each`` (tests) is called for each ticket of a group, just before the group's
    commit — for the last one just after, as if the group were processed one by one.
    """
    from escalation import notify, scan
    from server.tickets import operations as ops
    from server.tickets.models import Ticket
    from server.tickets.queries import lock_tickets_for_job

    started = time.monotonic()
    now = now or utcnow()
    report = ScanReport()
    try:
        while True:
            handled = scan.fire_due_soon(now, limit=reminder_batch)
            db.session.commit()
            report.due_soon += handled
            if handled < reminder_batch or time.monotonic() - started > time_budget:
                break
        while True:
            swept = scan.sweep_due_soon(now, limit=reminder_batch)
            db.session.commit()
            report.due_soon += swept.handled
            if swept.read < reminder_batch or time.monotonic() - started > time_budget:
                break
        seen: set[int] = set()
        done = 0
        while time.monotonic() - started <= time_budget:
            items = [i for i in scan.due_rungs(now, limit=batch) if i[0] not in seen]
            if not items:
                break
            for start in range(0, len(items), max(1, commit_every)):
                group = items[start:start + max(1, commit_every)]
                seen.update(clock_id for clock_id, _, _ in group)
                wanted = list(dict.fromkeys(t for _, t, _ in group))
                known = {t for t in wanted if identity_key(Ticket, t) in db.session.identity_map}
                tickets = lock_tickets_for_job(wanted)
                # Tickets being changed right now: the next scan comes back to them.
                report.skipped += sum(1 for _, t, _ in group if t not in tickets)
                mine = [(tickets[t], clock_id) for clock_id, t, _ in group if t in tickets]
                checks = ops.check_escalate_many(mine, now)
                ready = [c for c in checks if c is not None]
                fired = iter(ops.do_escalate_many(ready))
                for checked in checks:
                    if checked is None:
                        continue
                    if next(fired) is not None:
                        report.escalated += 1
                    else:
                        report.already_fired += 1
                for n in range(len(mine)):
                    done += 1
                    if n == len(mine) - 1:
                        db.session.commit()
                    if after_each is not None:
                        after_each(done)
                if not mine:
                    db.session.commit()  # nothing fired: release the locks all the same
                # The group's tickets leave the session once committed: each commit expires
                # every object the session holds, so the groups would otherwise cost more
                # and more. Tickets the caller had loaded before stay.
                for ticket_id, ticket in tickets.items():
                    if ticket_id not in known:
                        db.session.expunge(ticket)
                if time.monotonic() - started > time_budget:
                    report.complete = False
                    break
            if not report.complete:
                break
        report.digests = notify.flush(now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    report.seconds = round(time.monotonic() - started, 3)
    return report


def scan_deadlines() -> dict[str, Any]:
    """RQ job (every minute): the deadline scan. Safe to run twice at once."""
    with worker_app().app_context():
        report = run_scan()
        log.info("deadline scan: %s", report.as_dict())
        return report.as_dict()


def sync_calendar() -> list[int]:
    """RQ job (hourly): import holiday years a newer ``chinesecalendar`` brings, and
    recompute the open deadlines that were provisional."""
    from escalation.operations import do_sync_calendar

    with worker_app().app_context():
        years = do_sync_calendar()
        db.session.commit()
        return years


def anchor_audit() -> dict[str, Any]:
    """RQ job (hourly): write the moved audit heads outside the database."""
    from server.core.anchors import anchor_path, write_anchor

    app = worker_app()
    with app.app_context():
        path = anchor_path()
        assert path is not None
        report = write_anchor(path)
        db.session.commit()
        return {"streams": report.streams, "changed": report.changed}


#: What ``yihao scheduler`` enqueues, and how often.
PERIODIC: list[Periodic] = [
    Periodic("outbox-sweep", deliver_outbox, 30),
    Periodic("deadline-scan", scan_deadlines, 60),
    Periodic("calendar-sync", sync_calendar, 3600),
    Periodic("audit-anchor", anchor_audit, 3600),
]
