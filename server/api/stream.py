"""The live stream: the caller's notices as server-sent events while the app is open.

Push cannot reach every phone (Chrome's push service is blocked in mainland China; a phone may
have refused permission), so the open app also listens here and gets the same notices —
every row added to its owner's ``notifications``, including those an outbound channel holds
until working hours.

Built for plain WSGI servers (gunicorn sync or gthread workers, werkzeug's threaded server):
each response is bounded (``YIHAO_STREAM_SECONDS``, 25 s by default) and the browser's
EventSource reconnects by itself after ``retry:``, sending the last ``id:`` it saw as
``Last-Event-ID``, from which the next response continues. New rows are found by polling the
database with an indexed read every few seconds, with no connection held while waiting.
Each process lets only ``YIHAO_STREAM_SLOTS`` responses stay open at once; beyond that a
response sends what is pending and closes at once with a longer ``retry:`` — polling, which
costs a request, not a worker thread held for the whole interval.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, request, stream_with_context

from escalation.models import Notification
from server.auth import current_actor
from server.core.db import db
from server.core.errors import InvalidInput

from . import bp
from .escalations import notification_json

BATCH = 50
_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _slots_for(size: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        if size not in _slots:
            _slots[size] = threading.BoundedSemaphore(size)
        return _slots[size]


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) >= 2**63:
        raise InvalidInput("Last-Event-ID (or after) must be an id this stream sent",
                           code="invalid_event_id", field="after")
    return int(raw)


def _event(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _newer(user_id: int, after: int) -> list[tuple[int, dict[str, Any]]]:
    """[(id, notice JSON)] after ``after``, oldest first; the read transaction ends here, so
    no connection is held while the stream waits."""
    try:
        rows = db.session.execute(
            sa.select(Notification).where(Notification.user_id == user_id,
                                          Notification.id > after)
            .order_by(Notification.id).limit(BATCH)).scalars().all()
        return [(n.id, notification_json(n)) for n in rows]
    finally:
        db.session.rollback()


@bp.get("/events/stream")
def event_stream():  # type: ignore[no-untyped-def]
    """``text/event-stream`` of ``notice`` events (the notification JSON of the inbox),
    ``ready`` first and ``bye`` last; comments as heartbeats. Resumes after Last-Event-ID
    (or ``?after=``); without either, starts after the newest notice (the app reads the
    inbox itself)."""
    actor = current_actor()
    user_id = actor.id
    after = _last_event_id()
    if after is None:
        after = db.session.execute(sa.select(sa.func.coalesce(sa.func.max(Notification.id), 0))
                                   .where(Notification.user_id == user_id)).scalar_one()
    config = current_app.config
    seconds = float(config.get("YIHAO_STREAM_SECONDS", 25))
    poll = float(config.get("YIHAO_STREAM_POLL_SECONDS", 2))
    beat = float(config.get("YIHAO_STREAM_HEARTBEAT_SECONDS", 10))
    slots = _slots_for(int(config.get("YIHAO_STREAM_SLOTS", 8)))
    db.session.rollback()

    def generate(after: int) -> Iterator[str]:
        held = slots.acquire(blocking=False)
        try:
            # Busy: send what is pending and let the browser come back later.
            yield f"retry: {3000 if held else 15000}\n\n"
            yield _event("ready", {"after": after, "live": held}, after)
            started = last_beat = time.monotonic()
            while True:
                rows = _newer(user_id, after)
                for note_id, note in rows:
                    after = note_id
                    yield _event("notice", note, note_id)
                if len(rows) == BATCH:
                    continue
                now = time.monotonic()
                if not held or now - started >= seconds:
                    break
                if now - last_beat >= beat:
                    last_beat = now
                    yield ": heartbeat\n\n"
                time.sleep(max(0.05, min(poll, seconds - (now - started))))
            yield _event("bye", {"after": after})
        finally:
            if held:
                slots.release()

    response = Response(stream_with_context(generate(after)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache, no-transform"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
