"""The transactional outbox: one message per change, written in the change's transaction,
delivered to webhooks after the commit — signed, retried with backoff, and exactly once per
receiver even when the delivery job runs twice.

The receiver is a real HTTP server on 127.0.0.1; the queue is a real Redis (the local one, or
the embedded one the app can start) and jobs run in a real RQ worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask

from hierarchy.models import User
from server import jobs
from server.core.audit import Event
from server.core.db import db, utcnow
from server.core.outbox import OutboxMessage
from server.tickets import operations as ops
from server.tickets import schemas
from server.tickets.queries import get_visible_ticket
from server.webhooks import Webhook
from tests.conftest import World

SECRET = "receiver-secret-7f3a"
REDIS_URL = os.environ.get("YIHAO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


# ---------------------------------------------------------------- a real receiver


@dataclass
class Receiver:
    """Records what it is sent; answers ``status``; checks every signature."""

    url: str = ""
    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[int]:
        with self.lock:
            return [b["id"] for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(self.headers.get("X-Yihao-Signature", ""), expected)
            body = json.loads(raw)
            with rec.lock:
                if not signed:
                    rec.bad_signatures += 1
                elif rec.status < 300:
                    assert self.headers["X-Yihao-Message"] == str(body["id"])
                    rec.bodies.append(body)
            self.send_response(rec.status if signed else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def _add_webhook(app: Flask, url: str, topics: str = "", secret: str = SECRET) -> None:
    with app.app_context():
        db.session.add(Webhook(url=url, secret=secret, topics=topics))
        db.session.commit()


def _messages(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.execute(sa.select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
        return [{"id": m.id, "topic": m.topic, "event_id": m.event_id, "payload": m.payload,
                 "sent_at": m.sent_at, "attempts": m.attempts, "last_error": m.last_error,
                 "next_attempt_at": m.next_attempt_at, "ticket_id": m.ticket_id} for m in rows]


def _deliver(app: Flask, ids: list[int] | None = None) -> int:
    with app.app_context():
        return jobs.deliver_pending(ids)


# ---------------------------------------------------------------- written with the change


def test_every_action_writes_one_message_naming_its_event(app, world, as_user, walk):
    before = len(_messages(app))
    number = walk("closed")
    messages = _messages(app)[before:]
    with app.app_context():
        events = db.session.execute(
            sa.select(Event).where(Event.stream.like("ticket:%")).order_by(Event.id)
        ).scalars().all()
        by_id = {e.id: e for e in events}
    assert len(messages) == len(events) == 8
    for message in messages:
        event = by_id[message["event_id"]]
        assert message["topic"] == f"ticket.{event.kind}"
        assert message["payload"]["number"] == number
        assert message["payload"]["event"]["seq"] == event.seq
        assert message["payload"]["version"] == event.seq
        assert message["sent_at"] is None and message["attempts"] == 0
    assert [m["payload"]["status"] for m in messages][-1] == "closed"


def test_a_refused_action_writes_no_message(app, world, as_user, walk):
    number = walk("assigned")
    before = _messages(app)
    r = as_user("worker").post(f"/tickets/{number}/reply", {"result": "已处理",
                                                            "resolution": "resolved"})
    assert r.status_code == 409
    assert _messages(app) == before


def test_a_rolled_back_action_writes_no_message_and_dispatches_nothing(app, world, walk):
    number = walk("in_progress")
    before = _messages(app)
    dispatched: list[list[int]] = []
    from server.core import outbox

    previous = outbox._dispatcher
    outbox.set_dispatcher(dispatched.append)
    try:
        with app.app_context():
            county = db.session.get(User, world.users["county"])
            ticket = get_visible_ticket(county, number, lock=True)
            ops.do_urge(ops.check_urge(county, ticket, schemas.UrgeBody(note="催一下")))
            assert db.session.execute(
                sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one() \
                == len(before) + 1  # written inside the transaction …
            db.session.rollback()  # … and gone with it
            db.session.remove()
        assert _messages(app) == before
        assert dispatched == []
        with app.app_context():  # the same change committed: dispatched once, after commit
            county = db.session.get(User, world.users["county"])
            ticket = get_visible_ticket(county, number, lock=True)
            ops.do_urge(ops.check_urge(county, ticket, schemas.UrgeBody(note="催一下")))
            assert dispatched == []
            db.session.commit()
            db.session.remove()
        assert dispatched == [[_messages(app)[-1]["id"]]]
    finally:
        outbox.set_dispatcher(previous)


# ---------------------------------------------------------------- delivery


def test_delivery_posts_signed_messages_once(app, world, walk, receiver):
    _add_webhook(app, receiver.url)
    walk("in_progress")
    pending = _messages(app)
    assert _deliver(app) == len(pending)
    assert receiver.bad_signatures == 0
    assert receiver.ids() == [m["id"] for m in pending]
    for body, message in zip(receiver.bodies, pending, strict=True):
        assert body["topic"] == message["topic"]
        assert body["payload"] == message["payload"]
    after = _messages(app)
    assert all(m["sent_at"] is not None and m["attempts"] == 1 for m in after)
    assert _deliver(app) == 0
    assert len(receiver.ids()) == len(pending), "a sent message went out again"


def test_a_failing_receiver_leaves_the_message_for_later(app, world, walk, receiver):
    _add_webhook(app, receiver.url)
    receiver.status = 500
    walk("accepted")
    [message] = _messages(app)
    started = utcnow()
    assert _deliver(app) == 0
    [failed] = _messages(app)
    assert failed["sent_at"] is None
    assert failed["attempts"] == 1
    assert failed["last_error"] and "500" in failed["last_error"]
    assert failed["next_attempt_at"] >= started + timedelta(seconds=15)
    assert _deliver(app) == 0, "not due yet: the backoff holds it back"
    assert _messages(app)[0]["attempts"] == 1
    with app.app_context():  # time passes
        db.session.execute(sa.update(OutboxMessage).values(
            next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _deliver(app) == 0
    second = _messages(app)[0]
    assert second["attempts"] == 2
    assert second["next_attempt_at"] - utcnow() > failed["next_attempt_at"] - started, \
        "the backoff grows"
    receiver.status = 200
    with app.app_context():
        db.session.execute(sa.update(OutboxMessage).values(
            next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _deliver(app) == 1
    assert receiver.ids() == [message["id"]]
    assert _messages(app)[0]["attempts"] == 3 and _messages(app)[0]["sent_at"] is not None


def test_an_unreachable_receiver_is_a_retry_not_a_crash(app, world, walk):
    _add_webhook(app, "http://127.0.0.1:9/nothing-listens-here")
    walk("accepted")
    assert _deliver(app) == 0
    [message] = _messages(app)
    assert message["sent_at"] is None and message["attempts"] == 1 and message["last_error"]


def test_topics_choose_what_a_webhook_receives(app, world, walk, receiver):
    _add_webhook(app, receiver.url, topics="ticket.sign,ticket.reply")
    walk("replied")
    assert _deliver(app) == len(_messages(app))
    assert [b["topic"] for b in receiver.bodies] == ["ticket.sign", "ticket.reply"]


def test_a_wrong_secret_is_refused_by_the_receiver(app, world, walk, receiver):
    _add_webhook(app, receiver.url, secret="not-the-receivers-secret")
    walk("accepted")
    assert _deliver(app) == 0
    assert receiver.bad_signatures == 1 and receiver.bodies == []
    assert _messages(app)[0]["sent_at"] is None


# ---------------------------------------------------------------- RQ, after commit


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """The local Redis when one answers, else the embedded one."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
        yield REDIS_URL
        return
    except redis.RedisError:
        pass
    from server import embedded_redis

    home = tmp_path / "redis-home"
    url = embedded_redis.ensure_running(home)
    yield url
    embedded_redis.stop(home)


@pytest.fixture
def rq_app(app: Flask, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The test app with jobs on, its own queue name, and a worker app built from the
    environment exactly as ``yihao worker`` builds it (same database, same keys)."""
    monkeypatch.setattr(jobs, "QUEUE_NAME", f"yihao-test-{uuid.uuid4().hex[:12]}")
    app.config.update(YIHAO_JOBS_ENABLED=True, YIHAO_REDIS_URL=redis_url)
    for name, value in {
        "YIHAO_HOME": app.config["YIHAO_HOME"],
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": redis_url,
        "YIHAO_SECRET_KEY": app.config["SECRET_KEY"],
        "YIHAO_DATA_KEY": "M0ZkTnFIaDJ0Sk5XbkJ6c2lRb2xYa1V1Y2R4a0ZZMFk=",
        "YIHAO_AUDIT_KEY": "test-audit-key",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(jobs, "_worker_app", None)
    yield app
    q = jobs.queue(app)
    q.delete(delete_jobs=True)
    worker_app = jobs._worker_app
    if worker_app is not None and worker_app is not app:
        with worker_app.app_context():
            db.session.remove()
            db.engine.dispose()


def _work(app: Flask) -> None:
    from rq import SimpleWorker

    q = jobs.queue(app)
    SimpleWorker([q], connection=q.connection).work(burst=True)


def test_rq_job_enqueued_after_commit_delivers_exactly_once(rq_app, world: World, walk,
                                                            receiver, as_user):
    _add_webhook(rq_app, receiver.url)
    q = jobs.queue(rq_app)
    number = walk("assigned")
    messages = _messages(rq_app)
    assert len(q) == len(messages), "one delivery job per committed change"
    assert receiver.ids() == [], "nothing is sent before a worker runs"

    refused = as_user("worker").post(f"/tickets/{number}/reply",
                                     {"result": "已处理", "resolution": "resolved"})
    assert refused.status_code == 409
    assert len(q) == len(messages), "a rolled-back change enqueues nothing"

    ids = [m["id"] for m in messages]
    q.enqueue(jobs.deliver_outbox, ids)  # at-least-once: the same delivery, twice more
    q.enqueue(jobs.deliver_outbox, ids)
    _work(rq_app)
    assert len(q) == 0
    assert sorted(receiver.ids()) == ids, "each message delivered exactly once"
    assert receiver.bad_signatures == 0
    assert all(m["sent_at"] is not None for m in _messages(rq_app))
    failed = q.failed_job_registry
    assert failed.count == 0, [q.fetch_job(j).exc_info for j in failed.get_job_ids()]


def test_rq_sweep_delivers_what_the_enqueue_missed(rq_app, world: World, walk, receiver):
    """Redis down at commit time only delays a message: the sweep (ids=None) sends it."""
    _add_webhook(rq_app, receiver.url)
    rq_app.config["YIHAO_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    jobs.forget_connections()
    walk("accepted")
    rq_app.config["YIHAO_REDIS_URL"] = os.environ["REDIS_URL"]
    jobs.forget_connections()
    q = jobs.queue(rq_app)
    assert len(q) == 0
    q.enqueue(jobs.deliver_outbox, None)
    _work(rq_app)
    assert receiver.ids() == [m["id"] for m in _messages(rq_app)]
