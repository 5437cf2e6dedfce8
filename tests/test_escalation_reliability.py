"""Reliability: a worker killed mid-scan, a failing outbound channel, Redis restarted with
jobs queued, and the clock jumping across a holiday — nothing lost, nothing doubled."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from escalation.models import Escalation, Fired, Notification
from tests.test_escalation_support import accept_at, act_at, events, rows, scan, seed, sh


@pytest.fixture
def esc(app, world):  # type: ignore[no-untyped-def]
    seed(app)
    return app, world


def _assigned(app, world, at) -> str:  # type: ignore[no-untyped-def]
    number = accept_at(app, world, at)
    act_at(app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"},
           at + timedelta(minutes=5))
    return number


def _sms(app) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    from server.core.db import db
    from server.core.outbox import OutboxMessage

    with app.app_context():
        out = [m.payload for m in db.session.execute(
            sa.select(OutboxMessage).where(OutboxMessage.topic == "notify.sms")
            .order_by(OutboxMessage.id)).scalars()]
        db.session.remove()
        return out


def test_worker_killed_mid_scan_then_restarted(esc) -> None:  # type: ignore[no-untyped-def]
    """Each ticket commits on its own: what committed stays done, the rest is redone once."""
    app, world = esc
    numbers = [_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(5)]

    class Killed(BaseException):
        """Like SIGKILL: not an Exception, nothing catches it on the way out."""

    def kill_after_two(done: int) -> None:
        if done == 2:
            raise Killed

    with pytest.raises(Killed):
        scan(app, sh(2025, 3, 4, 10, 6), after_each=kill_after_two, commit_every=1)
    assert sum(len(events(app, n, "escalate")) for n in numbers) == 2
    scan(app, sh(2025, 3, 4, 10, 6))
    scan(app, sh(2025, 3, 4, 10, 6))
    assert [len(events(app, n, "escalate")) for n in numbers] == [1] * 5
    keys = [(f["ticket_id"], f["clock"], f["cycle"], f["rung"], f["deadline"])
            for f in rows(app, Fired)]
    assert len(keys) == len(set(keys)) == 5
    overdue = rows(app, Notification, kind="overdue")
    assert sorted(n["ticket_id"] for n in overdue) == sorted(
        {n["ticket_id"] for n in overdue})  # one notice per ticket, none doubled


def test_killed_mid_group_the_group_is_redone_once(esc) -> None:  # type: ignore[no-untyped-def]
    """Tickets commit in groups: a kill inside a group rolls the whole group back."""
    app, world = esc
    numbers = [_assigned(app, world, sh(2025, 3, 3, 10)) for _ in range(5)]

    def kill_at_three(done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt  # a BaseException, as a signal would be

    with pytest.raises(KeyboardInterrupt):
        scan(app, sh(2025, 3, 4, 10, 6), after_each=kill_at_three, commit_every=2)
    assert sum(len(events(app, n, "escalate")) for n in numbers) == 2  # the first group
    report = scan(app, sh(2025, 3, 4, 10, 6), commit_every=2)
    assert report.escalated == 3
    assert [len(events(app, n, "escalate")) for n in numbers] == [1] * 5
    assert len(rows(app, Escalation)) == 5


def test_a_failing_channel_delays_the_digest_and_never_doubles_it(esc) -> None:  # type: ignore[no-untyped-def]
    from escalation import notify

    app, world = esc
    for _ in range(3):
        _assigned(app, world, sh(2025, 3, 3, 10))

    class FlakyGateway:
        name = "flaky"
        failures = 1

        def send(self, digests: Sequence[notify.Digest]) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("gateway queue unavailable")

    flaky = FlakyGateway()
    notify.register_channel(flaky)
    try:
        with pytest.raises(ConnectionError):
            scan(app, sh(2025, 3, 4, 9))
        # The reminders committed (their batch did); the digest rolled back with its flush.
        assert rows(app, Notification, kind="due_soon")[0]["data"]["count"] == 3
        assert all(n["dispatched_at"] is None for n in rows(app, Notification, kind="due_soon"))
        assert _sms(app) == []
        report = scan(app, sh(2025, 3, 4, 9, 1))
        assert report.due_soon == 0 and report.digests == 1
        assert [m["count"] for m in _sms(app)] == [3]
        assert scan(app, sh(2025, 3, 4, 9, 2)).digests == 0
    finally:
        notify.CHANNELS.remove(flaky)


def test_a_clock_jump_across_the_holiday(esc) -> None:  # type: ignore[no-untyped-def]
    """The scheduler was down over National Day: the first scan after it fires one rung per
    clock, the next ones climb — never two rungs at once, never the skipped reminder."""
    app, world = esc
    number = _assigned(app, world, sh(2025, 9, 30, 10))
    assert scan(app, sh(2025, 9, 30, 12)).due_soon == 0
    jump = sh(2025, 10, 20, 9)
    assert scan(app, jump).escalated == 2  # sign (due 9 October) and reply (due 14 October)
    assert scan(app, jump).escalated == 2
    assert scan(app, jump).escalated == 2
    assert scan(app, jump).escalated == 0
    ladder = [(e["data"]["clock"], e["data"]["rung"]) for e in events(app, number, "escalate")]
    assert sorted(ladder) == [("reply", 1), ("reply", 2), ("reply", 3),
                              ("sign", 1), ("sign", 2), ("sign", 3)]
    deadlines = {e["data"]["clock"]: e["data"]["deadline"]
                 for e in events(app, number, "escalate")}
    assert deadlines == {"sign": sh(2025, 10, 9, 10, 5).isoformat(),
                         "reply": sh(2025, 10, 14, 10).isoformat()}
    assert rows(app, Notification, kind="due_soon") == []


# ---------------------------------------------------------------- Redis restarted


@pytest.fixture
def redis_home(tmp_path: Path) -> Iterator[Path]:
    from server import embedded_redis

    home = tmp_path / "redis-home"
    home.mkdir()
    embedded_redis.ensure_running(home)
    yield home
    embedded_redis.stop(home)


def test_jobs_resume_after_a_redis_restart(esc, redis_home) -> None:  # type: ignore[no-untyped-def]
    """A scan queued before Redis went down runs after it comes back (append-only file);
    the scheduler's next enqueue runs too, and the database guard keeps it exactly once."""
    from rq import SimpleWorker

    from server import embedded_redis, jobs
    from server.core.db import utcnow

    app, world = esc
    app.config["YIHAO_REDIS_URL"] = embedded_redis.url_for(redis_home)
    start = utcnow() - timedelta(days=8)
    numbers = [_assigned(app, world, start) for _ in range(2)]
    previous, jobs._worker_app = jobs._worker_app, app
    try:
        queue = jobs.queue(app)
        queue.enqueue(jobs.scan_deadlines, job_id="deadline-scan-1")
        embedded_redis.stop(redis_home)
        with pytest.raises(Exception):  # noqa: B017 - any Redis error: it is down
            jobs.connection(app).ping()
        embedded_redis.ensure_running(redis_home)
        queue = jobs.queue(app)
        assert queue.count == 1, "the queued scan survived the restart"
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        after_first = [len(events(app, n, "escalate")) for n in numbers]
        assert all(count >= 1 for count in after_first)
        queue.enqueue(jobs.scan_deadlines, job_id="deadline-scan-2")
        queue.enqueue(jobs.scan_deadlines, job_id="deadline-scan-3")  # a second scheduler
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        with app.app_context():
            from server.core.db import db

            items = db.session.execute(sa.select(Escalation)).scalars().all()
            keys = [(i.ticket_id, i.clock, i.cycle, i.rung) for i in items]
            assert len(keys) == len(set(keys))
            db.session.remove()
        fired = [(f["ticket_id"], f["clock"], f["cycle"], f["rung"], f["deadline"])
                 for f in rows(app, Fired)]
        assert len(fired) == len(set(fired))
    finally:
        jobs._worker_app = previous


# ---------------------------------------------------------------- the SMS webhook, end to end


def test_the_sms_gateway_gets_each_digest_once(esc) -> None:  # type: ignore[no-untyped-def]
    """A real HTTP receiver on loopback registered for ``notify.sms``; a catch-all webhook
    (the hotline platform) never sees staff notices."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from server.core.db import db
    from server.jobs import deliver_pending
    from server.webhooks import Webhook

    app, world = esc
    received: list[tuple[str, dict]] = []  # type: ignore[type-arg]

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with app.app_context():
            db.session.add(Webhook(url=f"http://127.0.0.1:{port}/sms", secret="s",
                                   topics="notify.sms"))
            db.session.add(Webhook(url=f"http://127.0.0.1:{port}/platform", secret="s",
                                   topics=""))
            db.session.commit()
        for _ in range(4):
            _assigned(app, world, sh(2025, 3, 3, 10))
        scan(app, sh(2025, 3, 4, 9))
        with app.app_context():
            deliver_pending()
            deliver_pending()
        sms = [body for path, body in received if body["topic"] == "notify.sms"]
        assert [(b["payload"]["user"], b["payload"]["count"]) for b in sms] == [("worker", 4)]
        assert all(path == "/sms" for path, body in received if body["topic"] == "notify.sms")
        assert not [b for p, b in received if p == "/platform" and b["topic"].startswith(
            "notify.")]
        assert [p for p, _b in received].count("/platform") > 0  # ticket events still flow
    finally:
        server.shutdown()
        server.server_close()
