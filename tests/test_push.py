"""Web Push end to end, against a push service running in this process.

No push service on the internet is reachable here, so :class:`PushService` plays one: a real
HTTP server on loopback that holds each subscription's private key and auth secret (made as a
browser makes them: an EC P-256 key pair and 16 random bytes), checks every request's VAPID
JWT against the server's public key (``Authorization: vapid t=…, k=…``, RFC 8292), decrypts the
aes128gcm body with ``http_ece`` (RFC 8291) and answers 201 — or 404/410 (gone), 5xx (retry)
or 403, as a test tells it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask import Flask

from tests.conftest import Api, World


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One subscription as a browser holds it: the key pair and auth secret stay here."""

    name: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def json(self) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)}}


@dataclass
class Received:
    path: str
    #: Names in lower case.
    headers: dict[str, str]
    claims: dict[str, Any]
    vapid_key: str
    payload: dict[str, Any]


class PushService:
    """A push service on loopback that verifies and decrypts what it is sent."""

    def __init__(self) -> None:
        self.browsers: dict[str, Browser] = {}
        self.received: list[Received] = []
        self.errors: list[str] = []
        #: path → statuses to answer, in turn (then 201).
        self.answers: dict[str, list[int]] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = service.handle(self.path, {k.lower(): v for k, v in self.headers.items()},
                                        body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def browser(self, name: str) -> Browser:
        self.browsers[name] = Browser(name, f"{self.origin}/push/{name}")
        return self.browsers[name]

    def to(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/push/{name}"]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        name = path.rsplit("/", 1)[-1]
        browser = self.browsers.get(name)
        if browser is None:
            return 404
        try:
            claims, key = self.verify_vapid(headers.get("authorization", ""))
            if headers.get("content-encoding") != "aes128gcm":
                raise AssertionError(f"Content-Encoding {headers.get('content-encoding')}")
            if not headers.get("ttl", "").isdigit():
                raise AssertionError("no TTL header")
            plain = http_ece.decrypt(body, private_key=browser.key, auth_secret=browser.auth,
                                     version="aes128gcm")
            payload = json.loads(plain)
        except Exception as exc:  # recorded: the test fails on any
            self.errors.append(f"{path}: {exc!r}")
            return 400
        self.received.append(Received(path, headers, claims, key, payload))
        queued = self.answers.get(name)
        return queued.pop(0) if queued else 201

    def verify_vapid(self, header: str) -> tuple[dict[str, Any], str]:
        """RFC 8292: ``vapid t=<JWT ES256>, k=<public key>``; the JWT's aud is our origin."""
        scheme, _, params = header.partition(" ")
        assert scheme.lower() == "vapid", header
        parts = dict(p.strip().split("=", 1) for p in params.split(","))
        token, key = parts["t"], parts["k"]
        head_b64, claims_b64, sig_b64 = token.split(".")
        assert json.loads(unb64url(head_b64)) == {"typ": "JWT", "alg": "ES256"}
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        sig = unb64url(sig_b64)
        assert len(sig) == 64
        public.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                           int.from_bytes(sig[32:], "big")),
                      f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(unb64url(claims_b64))
        assert claims["aud"] == self.origin, claims
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600, claims
        assert claims["sub"].startswith(("mailto:", "https:")), claims
        return claims, key


@pytest.fixture
def pushsvc() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.close()
    assert not service.errors, service.errors


@pytest.fixture
def push_app(app: Flask) -> Flask:
    app.config["YIHAO_PUSH_ALLOW_INSECURE"] = True  # the service above is http on loopback
    return app


def subscribe(api: Api, browser: Browser, device: str | None = None) -> Any:
    return api.client.post("/api/v1/push/subscriptions", headers=api.headers(), json={
        "device_id": device or f"device-{browser.name}", "subscription": browser.json()})


def deliver(app: Flask) -> int:
    from server.jobs import deliver_pending

    with app.app_context():
        return deliver_pending()


def outbox(app: Flask, topic: str) -> list[dict[str, Any]]:
    from server.core.db import db
    from server.core.outbox import OutboxMessage

    with app.app_context():
        found = db.session.execute(sa.select(OutboxMessage).where(OutboxMessage.topic == topic)
                                   .order_by(OutboxMessage.id)).scalars().all()
        out = [{"id": m.id, "payload": m.payload, "sent_at": m.sent_at, "attempts": m.attempts,
                "last_error": m.last_error, "next_attempt_at": m.next_attempt_at} for m in found]
        db.session.remove()
        return out


def subscriptions(app: Flask) -> dict[str, dict[str, Any]]:
    from escalation.push import PushSubscription
    from server.core.db import db

    with app.app_context():
        subs = db.session.execute(sa.select(PushSubscription)).scalars().all()
        out = {s.device_id: {"failure_count": s.failure_count, "last_error": s.last_error,
                             "last_failure_at": s.last_failure_at,
                             "last_success_at": s.last_success_at, "last_status": s.last_status}
               for s in subs}
        db.session.remove()
        return out


def to_worker(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
              **overrides: Any) -> str:
    """A new ticket, dispatched by the township to grid G-HHW-01 (its on-duty ``worker``)."""
    number = accept(**overrides)["number"]
    for who, body in (("hotline", {"unit": "210102"}), ("county", {"unit": "210102001"}),
                      ("township", {"grid": "G-HHW-01", "note": "请今天处理"})):
        resp = as_user(who).post(f"/tickets/{number}/dispatch", body)
        assert resp.status_code == 200, resp.get_json()
    return number


# ---------------------------------------------------------------- end to end


def test_a_new_assignment_reaches_every_device_encrypted_and_signed(
        push_app: Flask, as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        pushsvc: PushService) -> None:
    worker = as_user("worker")
    key = worker.get("/push/vapid-public-key").get_json()["public_key"]
    assert len(unb64url(key)) == 65 and unb64url(key)[0] == 4
    phone, tablet = pushsvc.browser("phone"), pushsvc.browser("tablet")
    assert subscribe(worker, phone).status_code == 201
    assert subscribe(worker, tablet).status_code == 201
    number = to_worker(as_user, accept)
    # Queued in the dispatch's transaction, one message per digest; sent by the outbox job.
    assert len(outbox(push_app, "notify.push")) == 1
    assert pushsvc.received == []
    deliver(push_app)
    for device in ("phone", "tablet"):
        [got] = pushsvc.to(device)
        assert got.vapid_key == key  # signed with the key the browser subscribed with
        assert got.headers["ttl"] == "86400" and got.headers["urgency"] == "normal"
        assert got.headers["topic"].startswith("yh")
        assert got.payload["title"].startswith(f"新工单{number}")
        assert got.payload["body"] == "请今天处理"
        assert got.payload["tag"] == f"ticket-{number}"
        assert got.payload["url"] == f"/app/#/t/{number}"
        assert got.payload["kind"] == "assigned" and got.payload["tickets"] == [number]
        assert got.payload["urgent"] is False
    # Exactly once: the message is sent; delivering again sends nothing.
    [message] = outbox(push_app, "notify.push")
    assert message["sent_at"] is not None
    deliver(push_app)
    assert len(pushsvc.received) == 2
    assert all(s["last_success_at"] and s["failure_count"] == 0
               for s in subscriptions(push_app).values())
    # The same notice is in the inbox, for the app and the live stream.
    inbox = worker.get("/notifications").get_json()["items"]
    assert inbox[0]["kind"] == "assigned" and inbox[0]["ticket"] == number
    assert pushsvc.to("phone")[0].payload["notifications"] == [inbox[0]["id"]]
    # A normal ticket's assignment is no SMS; nobody without a device gets a push message.
    assert outbox(push_app, "notify.sms") == []


def test_the_push_goes_out_through_rq_after_the_commit(
        push_app: Flask, tmp_path: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], pushsvc: PushService) -> None:
    """The production path: the action commits, its after-commit hook enqueues the outbox
    job on Redis (the embedded one), and a worker process's job sends the push."""
    from rq import SimpleWorker

    from server import embedded_redis, jobs

    home = tmp_path / "redis-home"
    home.mkdir()
    embedded_redis.ensure_running(home)
    previous = jobs._worker_app
    try:
        push_app.config.update(YIHAO_REDIS_URL=embedded_redis.url_for(home),
                               YIHAO_JOBS_ENABLED=True)
        jobs._worker_app = push_app
        subscribe(as_user("worker"), pushsvc.browser("phone"))
        number = to_worker(as_user, accept)
        queue = jobs.queue(push_app)
        assert queue.count >= 1 and pushsvc.received == []  # queued, not sent in the request
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        [got] = pushsvc.to("phone")
        assert got.payload["tickets"] == [number]
        assert all(m["sent_at"] is not None for m in outbox(push_app, "notify.push"))
    finally:
        jobs._worker_app = previous
        jobs.forget_connections()
        embedded_redis.stop(home)


def test_life_and_safety_goes_high_urgency_and_by_sms_too(
        push_app: Flask, as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        pushsvc: PushService) -> None:
    worker = as_user("worker")
    subscribe(worker, pushsvc.browser("phone"))
    number = to_worker(as_user, accept, urgency="emergency")
    deliver(push_app)
    [got] = pushsvc.to("phone")
    assert got.headers["urgency"] == "high" and got.headers["ttl"] == "7200"
    assert got.payload["title"].startswith("【特急】") and got.payload["urgent"] is True
    [sms] = outbox(push_app, "notify.sms")
    assert sms["payload"]["user"] == "worker" and sms["payload"]["phone"] == "13800000000"
    assert number in sms["payload"]["text"]


def test_an_urge_is_pushed_to_the_assignee(
        push_app: Flask, as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        pushsvc: PushService) -> None:
    worker = as_user("worker")
    subscribe(worker, pushsvc.browser("phone"))
    number = to_worker(as_user, accept)
    assert as_user("worker").post(f"/tickets/{number}/sign").status_code == 200
    assert as_user("county").post(f"/tickets/{number}/urge",
                                  {"note": "群众再次来电，请加快"}).status_code == 200
    deliver(push_app)
    kinds = [r.payload["kind"] for r in pushsvc.to("phone")]
    assert kinds == ["assigned", "urged"]
    urged = pushsvc.to("phone")[1].payload
    assert urged["body"] == "群众再次来电，请加快" and urged["title"].startswith(f"工单{number}被督办")


def test_dead_subscriptions_are_removed(
        push_app: Flask, world: World, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], pushsvc: PushService) -> None:
    from server.core.audit import Event
    from server.core.db import db

    worker = as_user("worker")
    for name in ("gone", "unknown", "alive"):
        subscribe(worker, pushsvc.browser(name))
    pushsvc.answers = {"gone": [410], "unknown": [404]}
    to_worker(as_user, accept)
    deliver(push_app)
    assert len(pushsvc.received) == 3
    assert set(subscriptions(push_app)) == {"device-alive"}
    assert [m["sent_at"] is not None for m in outbox(push_app, "notify.push")] == [True]
    with push_app.app_context():
        gone = db.session.execute(sa.select(Event.data).where(Event.kind == "push.gone")
                                  .order_by(Event.id)).scalars().all()
        assert sorted((d["device"], d["status"]) for d in gone) == [
            ("device-gone", 410), ("device-unknown", 404)]
        db.session.remove()
    # The next assignment goes only to the device that is left.
    to_worker(as_user, accept)
    deliver(push_app)
    assert [len(pushsvc.to(n)) for n in ("gone", "unknown", "alive")] == [1, 1, 2]


def test_a_failing_push_service_is_retried_and_the_worker_shows_as_failing(
        push_app: Flask, as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        pushsvc: PushService) -> None:
    from server.core.db import db, utcnow
    from server.core.outbox import OutboxMessage

    worker = as_user("worker")
    subscribe(worker, pushsvc.browser("flaky"))
    subscribe(worker, pushsvc.browser("steady"))
    pushsvc.answers = {"flaky": [503, 502]}
    to_worker(as_user, accept)
    deliver(push_app)
    [message] = outbox(push_app, "notify.push")
    assert message["sent_at"] is None and message["attempts"] == 1
    assert "503" in message["last_error"] and message["next_attempt_at"] > utcnow()
    subs = subscriptions(push_app)
    assert subs["device-flaky"]["failure_count"] == 1 and subs["device-flaky"]["last_status"] == 503
    assert subs["device-flaky"]["last_failure_at"] is not None
    assert subs["device-steady"]["failure_count"] == 0
    # Not due yet: nothing is resent.
    deliver(push_app)
    assert len(pushsvc.received) == 2

    def due_now() -> None:
        with push_app.app_context():
            db.session.execute(sa.update(OutboxMessage).values(next_attempt_at=utcnow()))
            db.session.commit()

    due_now()
    deliver(push_app)
    due_now()
    deliver(push_app)
    # The steady device got it once; the flaky one after two failures, then the message is done.
    assert len(pushsvc.to("steady")) == 1 and len(pushsvc.to("flaky")) == 3
    [message] = outbox(push_app, "notify.push")
    assert message["sent_at"] is not None and message["attempts"] == 3
    subs = subscriptions(push_app)
    assert subs["device-flaky"]["failure_count"] == 0 and subs["device-flaky"]["last_error"] is None


def test_supervisors_see_whom_push_does_not_reach(
        push_app: Flask, as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        pushsvc: PushService) -> None:
    subscribe(as_user("worker"), pushsvc.browser("refused"))
    subscribe(as_user("backup"), pushsvc.browser("fine"))
    pushsvc.answers = {"refused": [403, 403]}  # e.g. subscribed under an older VAPID key
    to_worker(as_user, accept)
    deliver(push_app)
    [message] = outbox(push_app, "notify.push")
    assert message["sent_at"] is not None  # a refusal is recorded, not retried forever
    status = as_user("township").get("/push/status").get_json()["items"]
    by_user = {s["user"]: s for s in status}
    assert by_user["worker"]["state"] == "failing" and "403" in by_user["worker"]["last_error"]
    assert by_user["worker"]["last_failure_at"] is not None
    assert by_user["backup"]["state"] == "ok" and by_user["backup"]["devices"] == 1
    assert by_user["contact"]["state"] == "none"  # never subscribed: push cannot reach them
    assert "worker2" in by_user and "worker3" not in by_user  # another county's worker
    unreachable = as_user("township").get("/push/status", state="failing,none").get_json()
    assert {s["user"] for s in unreachable["items"]} == {"worker", "contact", "worker2"}
    page = as_user("county").get("/push/status", limit=1).get_json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    # The worker sees it on their own devices too; grid workers may not list others.
    mine = as_user("worker").get("/push/subscriptions").get_json()
    assert mine["state"] == "failing" and mine["items"][0]["failing"] is True
    assert as_user("worker").get("/push/status").status_code == 403
    assert as_user("township").get("/push/status", state="bad").status_code == 422
    assert as_user("township").get("/push/status", unit="210103").status_code == 422


# ---------------------------------------------------------------- digests from the scan


def test_twenty_due_tickets_make_one_push(push_app: Flask, world: World,
                                          pushsvc: PushService) -> None:
    from server.core.db import db
    from tests.test_escalation_support import accept_at, act_at, scan, seed, sh

    seed(push_app)
    api = Api(push_app.test_client(), world.tokens["worker"])
    subscribe(api, pushsvc.browser("phone"))
    for _ in range(20):
        number = accept_at(push_app, world, sh(2025, 3, 3, 10))
        act_at(push_app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"},
               sh(2025, 3, 3, 10, 5))
    deliver(push_app)
    assert len(pushsvc.to("phone")) == 20  # each assignment at once
    report = scan(push_app, sh(2025, 3, 4, 6))
    assert report.due_soon == 20 and report.digests == 0  # held until working hours
    report = scan(push_app, sh(2025, 3, 4, 8, 31))
    assert report.digests == 1
    deliver(push_app)
    digest = pushsvc.to("phone")[20:]
    assert len(digest) == 1
    assert digest[0].payload["count"] == 20 and len(digest[0].payload["tickets"]) == 20
    assert digest[0].payload["title"] == "您有20件工单即将超时"
    assert digest[0].payload["tag"] == "yihao-digest"
    assert scan(push_app, sh(2025, 3, 4, 9)).digests == 0
    deliver(push_app)
    assert len(pushsvc.received) == 21
    with push_app.app_context():
        db.session.remove()


def test_a_too_long_digest_is_cut_to_fit_a_push(app: Flask) -> None:
    from escalation.notify import Digest
    from escalation.push import MAX_PLAINTEXT, push_message
    from hierarchy.models import User

    @dataclass
    class Item:
        id: int
        kind: str
        title: str
        body: str
        data: dict[str, Any]
        urgent: bool = False

    numbers = [f"YH250303{i:07d}" for i in range(800)]
    item = Item(1, "due_soon", "您有800件工单即将超时", "请在时限前签收或办理",
                {"count": 800, "numbers": numbers})
    message = push_message(Digest(User(username="w"), [item]))
    size = len(json.dumps(message, ensure_ascii=False).encode())
    assert size <= MAX_PLAINTEXT and message["count"] == 800 and 0 < len(message["tickets"]) < 800


def test_vapid_keys_are_generated_once_into_the_home(app: Flask, tmp_path: Any) -> None:
    from escalation import push
    from server.app import create_app
    from tests.conftest import _settings

    with app.app_context():
        first = push.vapid_keys().public_key
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert stored["vapid_private_key"]
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"
    again = create_app(_settings(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"]))
    with again.app_context():
        assert push.vapid_keys().public_key == first  # the same key after a restart
    # From the environment (as VAPID_PRIVATE_KEY, raw base64url or PEM) it wins.
    from server.config import new_vapid_private_key

    raw = new_vapid_private_key()
    keys = push.load_vapid(raw, "mailto:ops@example.org")
    pem = keys.vapid.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    assert push.load_vapid(pem, "mailto:ops@example.org").public_key == keys.public_key
    with pytest.raises(RuntimeError):
        push.load_vapid("not-a-key", "mailto:ops@example.org")


def test_a_flush_costs_the_same_queries_for_one_person_or_many(
        push_app: Flask, world: World, pushsvc: PushService) -> None:
    """Every channel gets the flush's digests together: who has a device is one query for
    all of them, not one per person (the push channel once asked per digest). The outbox
    rows themselves are one per message, however they are batched."""
    from datetime import UTC, datetime

    from escalation import notify
    from server.core.db import db
    from tests.conftest import count_queries

    for name in ("worker", "backup", "township"):
        subscribe(Api(push_app.test_client(), world.tokens[name]), pushsvc.browser(name))
    at = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working Tuesday

    def flush_for(names: list[str]) -> tuple[int, list[str]]:
        with push_app.app_context():
            notify.insert_notices(notify.notice_rows(
                [world.users[n] for n in names], kind="urged", at=at, title="请处理",
                urgent=True))
            db.session.commit()
            with count_queries(push_app) as statements:
                digests = notify.flush(at)
                db.session.flush()
            db.session.commit()
        return digests, [" ".join(st.split())[:60] for st in statements
                         if not st.lstrip().startswith("INSERT INTO outbox")]

    one = flush_for(["worker"])
    many = flush_for(["worker", "backup", "township", "county", "hotline"])
    assert one[0] == 1 and many[0] == 5
    assert len(many[1]) == len(one[1]), "\n".join(one[1] + ["--"] + many[1])
    assert sum("push_subscriptions" in st for st in many[1]) == 1
