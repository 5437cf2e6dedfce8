"""Background jobs on RQ: outbox delivery now; deadline scans join with escalation.

Jobs take ids, never ORM objects, and are idempotent in the database: a message is marked
sent in the same transaction that records its delivery, and the sweeper picks only unsent
rows with ``FOR UPDATE SKIP LOCKED``, so two workers never deliver one message twice at
once, and a crashed worker's messages are picked up again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app
from rq import Queue

from server.core import outbox
from server.core.db import db, utcnow
from server.core.outbox import OutboxMessage

log = logging.getLogger(__name__)
QUEUE_NAME = "yihao"
MAX_ATTEMPTS = 12
_worker_app: Flask | None = None


def redis_url(app: Flask | None = None) -> str:
    app = app or current_app
    configured = app.config.get("YIHAO_REDIS_URL")
    if configured:
        return str(configured)
    from .embedded_redis import ensure_running

    return ensure_running(Path(app.config["YIHAO_HOME"]))


def connection(app: Flask | None = None) -> redis.Redis:
    return redis.Redis.from_url(redis_url(app))


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
        except (urllib.error.URLError, OSError, ValueError) as exc:
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


def enqueue_sweep(app: Flask) -> Any:
    return queue(app).enqueue(deliver_outbox, None, job_id="yihao-outbox-sweep")
