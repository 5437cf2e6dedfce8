"""Web Push as one more notification channel — and the record of whom it does not reach.

A grid worker's phone subscribes (one subscription per device, renewed on every app start);
each digest of notices (:mod:`escalation.notify`) becomes one outbox message on topic
``notify.push`` in the transaction that marks the notices dispatched, and the outbox job
sends it after commit to each of the person's devices: encrypted per RFC 8291 (aes128gcm),
signed per RFC 8292 (VAPID), with ``TTL``, ``Urgency`` (``high`` for life-and-safety) and
``Topic`` headers.

Push is never the only path: Chrome's push service is not reachable from mainland China, and
a phone may be off. The in-app inbox and the live stream (``/api/v1/events/stream``) carry the
same notices while the app is open, urgent ones also go out by SMS, and every attempt's
outcome is kept on the subscription, so a worker whose push failed is visible to the
supervisors (:func:`push_health`) instead of silently missing assignments.

Exactly once per digest and device: each successful send is a ``push_deliveries`` row written
with the outbox message's own bookkeeping; a retried message skips the devices it reached.
(The one window — sent, then the worker died before its commit — resends, and the
notification's ``tag`` makes the phone show it once.) A 404 or 410 from the push service
means the subscription is dead: it is deleted. 429, 5xx and network errors retry with the
outbox's back-off; other 4xx are recorded as failures and not retried.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from flask import Flask, current_app
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush
from sqlalchemy.orm import Mapped, mapped_column

from hierarchy.models import Role, User
from server.core import outbox
from server.core.audit import append_event
from server.core.db import BigID, UTCDateTime, db, utcnow
from server.core.errors import InvalidInput, NotFound
from server.core.outbox import OutboxMessage, queue_message

from . import notify

log = logging.getLogger(__name__)

PUSH_TOPIC = "notify.push"
#: How long a push service keeps an undelivered message (seconds): a day for notices,
#: two hours for life-and-safety ones (by then the ladder and SMS have taken over).
TTL_NORMAL = 24 * 3600
TTL_URGENT = 2 * 3600
#: Push services take at most 4096 bytes of encrypted body; aes128gcm adds 86 + 17.
MAX_PLAINTEXT = 3800
SEND_TIMEOUT_S = 10
#: Where a notification opens the PWA (served at /app/ by the pwa blueprint).
APP_URL = "/app/"


# ---------------------------------------------------------------- tables


class PushSubscription(db.Model):
    """One browser's push subscription on one device of one person.

    ``device_id`` is a random id the PWA keeps in localStorage; a device that subscribes again
    (a new endpoint after the browser rotated it) replaces its row. An endpoint is unique: a
    shared phone that another worker logs into moves to that worker.
    """

    __tablename__ = "push_subscriptions"
    __table_args__ = (sa.UniqueConstraint("user_id", "device_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True, nullable=False)
    device_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    endpoint: Mapped[str] = mapped_column(sa.String(1000), unique=True, nullable=False)
    p256dh: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    auth: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))
    #: What the browser said (``expirationTime``); null: no known expiry.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    #: Last time the app (re)sent it; every app start renews.
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last failed attempt (push_failed_at); cleared from view by a later success.
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Failed attempts since the last success.
    failure_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_status: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))

    @property
    def failing(self) -> bool:
        return self.failure_count > 0


class PushDelivery(db.Model):
    """One digest (outbox message) to one subscription: the outcome of its last attempt."""

    __tablename__ = "push_deliveries"
    __table_args__ = (sa.UniqueConstraint("message_id", "subscription_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigID, sa.ForeignKey("outbox.id"), index=True,
                                            nullable=False)
    subscription_id: Mapped[int] = mapped_column(
        BigID, sa.ForeignKey("push_subscriptions.id", ondelete="CASCADE"), index=True,
        nullable=False)
    #: sent, retry (429/5xx/network), failed (refused, not retried)
    outcome: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    status: Mapped[int | None] = mapped_column(sa.Integer)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(sa.String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# ---------------------------------------------------------------- VAPID keys


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VapidKeys:
    vapid: Vapid02
    #: The uncompressed P-256 point, base64url: ``applicationServerKey`` for the browser.
    public_key: str
    subject: str


def load_vapid(private_key: str, subject: str) -> VapidKeys:
    """The application server's keys from ``VAPID_PRIVATE_KEY`` (raw base64url, or PEM)."""
    text = private_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            vapid = Vapid02(key)
        else:
            vapid = Vapid02.from_string(text)
    except Exception as exc:  # any parse failure is a configuration error, said plainly
        raise RuntimeError(f"VAPID_PRIVATE_KEY is not a P-256 private key: {exc}") from exc
    point = vapid.public_key.public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    return VapidKeys(vapid, _b64url(point), subject)


def vapid_keys(app: Flask | None = None) -> VapidKeys:
    """This app's keys: from the environment, else generated into ``YIHAO_HOME`` once."""
    app = app or current_app
    keys = app.extensions.get("yihao_vapid")
    if keys is None:
        private = app.config.get("VAPID_PRIVATE_KEY")
        if not private:
            from pathlib import Path

            from server.config import load_or_create_secrets

            private = load_or_create_secrets(Path(app.config["YIHAO_HOME"]))["vapid_private_key"]
        keys = load_vapid(private, app.config.get("VAPID_SUBJECT") or "mailto:yihao@localhost")
        app.extensions["yihao_vapid"] = keys
    return keys  # type: ignore[no-any-return]


# ---------------------------------------------------------------- subscriptions


def validate_endpoint(endpoint: str, *, allow_insecure: bool = False) -> str:
    """A push service URL we are willing to POST to: https, a host name (not a private
    address: the server must not become a way to reach the intranet), no credentials.
    ``allow_insecure`` (tests, an intranet push service) admits http and loopback."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("endpoint is not a URL", code="invalid_endpoint",
                           field="endpoint") from None
    if parts.scheme not in (("https", "http") if allow_insecure else ("https",)) or not host:
        raise InvalidInput("endpoint must be an https URL of a push service",
                           code="invalid_endpoint", field="endpoint")
    if parts.username or parts.password:
        raise InvalidInput("endpoint must not carry credentials", code="invalid_endpoint",
                           field="endpoint")
    if not allow_insecure:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host == "localhost" or (address is not None and not address.is_global):
            raise InvalidInput("endpoint must be a public push service",
                               code="invalid_endpoint", field="endpoint")
    return endpoint


def validate_keys(p256dh: str, auth: str) -> None:
    """The browser's P-256 public key (65 bytes, uncompressed) and 16-byte auth secret."""
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        point = _unb64url(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        secret = _unb64url(auth)
    except (ValueError, TypeError):
        raise InvalidInput("keys.p256dh must be a P-256 public key (base64url)",
                           code="invalid_keys", field="keys") from None
    if len(point) != 65 or len(secret) != 16:
        raise InvalidInput("keys: p256dh must be 65 bytes and auth 16 bytes",
                           code="invalid_keys", field="keys")


@dataclass(frozen=True)
class SubscriptionInput:
    device_id: str
    endpoint: str
    p256dh: str
    auth: str
    expires_at: datetime | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class CheckedSubscribe:
    actor: User
    body: SubscriptionInput


def check_subscribe(actor: User, body: SubscriptionInput, *, allow_insecure: bool) -> CheckedSubscribe:
    """Anyone logged in may subscribe their own devices; the URL and keys must be sound."""
    if actor.is_system:
        raise InvalidInput("system accounts have no devices", code="not_a_person")
    validate_endpoint(body.endpoint, allow_insecure=allow_insecure)
    validate_keys(body.p256dh, body.auth)
    return CheckedSubscribe(actor, body)


def do_subscribe(checked: CheckedSubscribe, now: datetime | None = None) -> tuple[PushSubscription, bool]:
    """Create or renew the device's subscription; returns it and whether it is new.

    A renewal with nothing changed only moves ``renewed_at`` (every app start sends one) and
    writes no audit event; a new or changed subscription clears the failure record — the
    browser handed out a fresh endpoint, so old failures say nothing about it.
    """
    actor, body = checked.actor, checked.body
    now = now or utcnow()
    by_device = db.session.execute(
        sa.select(PushSubscription).where(PushSubscription.user_id == actor.id,
                                          PushSubscription.device_id == body.device_id)
        .with_for_update()).scalar_one_or_none()
    by_endpoint = db.session.execute(
        sa.select(PushSubscription).where(PushSubscription.endpoint == body.endpoint)
        .with_for_update()).scalar_one_or_none()
    if by_endpoint is not None and by_endpoint is not by_device:
        # The endpoint belonged to another row (another person on a shared phone, or this
        # device under an old id): one endpoint, one owner.
        _delete(by_endpoint)
        db.session.flush()
    sub = by_device
    changed = sub is None or (sub.endpoint, sub.p256dh, sub.auth) != (
        body.endpoint, body.p256dh, body.auth)
    created = sub is None
    if sub is None:
        sub = PushSubscription(user_id=actor.id, device_id=body.device_id, created_at=now)
        db.session.add(sub)
    sub.endpoint, sub.p256dh, sub.auth = body.endpoint, body.p256dh, body.auth
    sub.expires_at = body.expires_at
    sub.user_agent = (body.user_agent or "")[:300] or None
    sub.renewed_at = now
    if changed:
        sub.failure_count = 0
        sub.last_failure_at = None
        sub.last_status = None
        sub.last_error = None
        append_event(f"user:{actor.username}", "push.subscribe", actor=actor, at=now, data={
            "device": body.device_id, "service": urlsplit(body.endpoint).hostname,
            "new": created})
    db.session.flush()
    return sub, created


def check_unsubscribe(actor: User, *, device_id: str | None, endpoint: str | None) -> PushSubscription:
    """One's own subscription by device id or endpoint (404 for anyone else's)."""
    if not device_id and not endpoint:
        raise InvalidInput("give device_id or endpoint", code="invalid_input")
    query = sa.select(PushSubscription).where(PushSubscription.user_id == actor.id)
    query = query.where(PushSubscription.device_id == device_id) if device_id else query.where(
        PushSubscription.endpoint == endpoint)
    sub = db.session.execute(query.with_for_update()).scalar_one_or_none()
    if sub is None:
        raise NotFound("no such subscription", code="subscription_not_found")
    return sub


def do_unsubscribe(actor: User, sub: PushSubscription) -> None:
    append_event(f"user:{actor.username}", "push.unsubscribe", actor=actor,
                 data={"device": sub.device_id})
    _delete(sub)


def _delete(sub: PushSubscription) -> None:
    db.session.execute(sa.delete(PushDelivery).where(PushDelivery.subscription_id == sub.id))
    db.session.delete(sub)


def subscription_json(sub: PushSubscription) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": sub.id, "device_id": sub.device_id, "service": urlsplit(sub.endpoint).hostname,
            "created_at": iso(sub.created_at), "renewed_at": iso(sub.renewed_at),
            "expires_at": iso(sub.expires_at), "last_success_at": iso(sub.last_success_at),
            "last_failure_at": iso(sub.last_failure_at), "failure_count": sub.failure_count,
            "last_status": sub.last_status, "last_error": sub.last_error,
            "failing": sub.failing}


# ---------------------------------------------------------------- who push reaches


def push_health(user_ids: sa.Select[Any] | list[int]) -> dict[int, dict[str, Any]]:
    """{user id: push state} for these people, in two queries.

    ``state``: ``ok`` (some device took its last push, or has had none to take yet),
    ``failing`` (every device's last attempt failed), ``none`` (no device subscribed — push
    cannot reach them at all). Supervisors' screens show the last two: such a worker learns
    of new work only from the app being open, or by SMS.
    """
    s = PushSubscription.__table__.c
    rows = db.session.execute(
        sa.select(s.user_id, sa.func.count().label("devices"),
                  sa.func.sum(sa.case((s.failure_count > 0, 1), else_=0)).label("failing"),
                  sa.func.max(s.last_success_at).label("last_success_at"),
                  sa.func.max(s.last_failure_at).label("last_failure_at"),
                  sa.func.max(s.renewed_at).label("renewed_at"))
        .where(s.user_id.in_(user_ids)).group_by(s.user_id)).all()
    errors = dict(db.session.execute(
        sa.select(s.user_id, s.last_error).where(s.user_id.in_(user_ids),
                                                 s.failure_count > 0)
        .order_by(s.last_failure_at)).all())
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        failing = int(r.failing or 0)
        out[r.user_id] = {
            "state": "failing" if failing == r.devices else "ok",
            "devices": int(r.devices), "failing_devices": failing,
            "last_success_at": r.last_success_at, "last_failure_at": r.last_failure_at,
            "renewed_at": r.renewed_at, "last_error": errors.get(r.user_id),
        }
    return out


def unreachable_state() -> dict[str, Any]:
    return {"state": "none", "devices": 0, "failing_devices": 0, "last_success_at": None,
            "last_failure_at": None, "renewed_at": None, "last_error": None}


# ---------------------------------------------------------------- the channel


def _urgency(items: list[Any]) -> str:
    """RFC 8030 ``Urgency``: ``high`` wakes a dozing phone at once (life-and-safety, and a
    supervisor's urge); routine reminders are ``normal``; administrative ones ``low``."""
    kinds = {i.kind for i in items}
    if any(getattr(i, "urgent", False) for i in items):
        return "high"
    if kinds <= {"calendar_missing"}:
        return "low"
    return "normal"


def push_message(digest: notify.Digest) -> dict[str, Any]:
    """What the service worker gets (after decryption): everything ``showNotification``
    needs, and the notice ids so the app can mark them read."""
    items = list(digest.items)
    urgent = any(getattr(i, "urgent", False) for i in items)
    numbers: list[str] = []
    for item in items:
        data = item.data or {}
        numbers += [n for n in (data.get("numbers") or [data.get("number")]) if n]
    numbers = list(dict.fromkeys(numbers))
    total = sum(notify.Digest.count_of(i) for i in items)
    if len(items) == 1:  # one notice (which may itself sum up twenty tickets)
        title, body = items[0].title, items[0].body or ""
    else:
        title, body = f"您有{total}条工单提醒", digest.text.removeprefix("【一号】")
    one = numbers[0] if len(numbers) == 1 else None
    message: dict[str, Any] = {
        "title": ("【特急】" if urgent else "") + title, "body": body,
        "tag": f"ticket-{one}" if one else "yihao-digest",
        "url": f"{APP_URL}#/t/{quote(one)}" if one else f"{APP_URL}#/",
        "urgent": urgent, "count": total, "kind": items[0].kind if len(items) == 1 else "digest",
        "notifications": [i.id for i in items], "tickets": numbers,
    }
    while len(json.dumps(message, ensure_ascii=False).encode()) > MAX_PLAINTEXT and (
            message["tickets"] or message["notifications"]):
        key = "tickets" if message["tickets"] else "notifications"
        message[key] = message[key][: len(message[key]) // 2]
    return message


class WebPushChannel:
    """Queues one ``notify.push`` outbox message per digest for a person with a device;
    the outbox job sends it (:func:`deliver`) after commit."""

    name = "push"

    def send(self, digests: Sequence[notify.Digest]) -> None:
        with_device = set(db.session.execute(
            sa.select(PushSubscription.user_id).distinct()
            .where(PushSubscription.user_id.in_({d.user.id for d in digests}))).scalars())
        for digest in digests:
            if digest.user.id not in with_device:
                continue
            items = list(digest.items)
            urgent = any(getattr(i, "urgent", False) for i in items)
            queue_message(PUSH_TOPIC, {
                "user_id": digest.user.id, "user": digest.user.username,
                "ttl": TTL_URGENT if urgent else TTL_NORMAL, "urgency": _urgency(items),
                "message": push_message(digest)})


# ---------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Outcome:
    outcome: str  # sent, gone, retry, failed
    status: int | None
    error: str | None = None


def send_one(sub: PushSubscription, data: bytes, *, ttl: int, urgency: str, topic: str,
             keys: VapidKeys, session: requests.Session) -> Outcome:
    """POST one encrypted message to one subscription's push service; classify the answer."""
    info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
    try:
        response = webpush(info, data=data, vapid_private_key=keys.vapid,  # type: ignore[arg-type]
                           vapid_claims={"sub": keys.subject}, content_encoding="aes128gcm",
                           ttl=ttl, headers={"Urgency": urgency, "Topic": topic},
                           timeout=SEND_TIMEOUT_S, requests_session=session)
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        text = (exc.response.text if exc.response is not None else str(exc))[:300]
        if status in (404, 410):
            return Outcome("gone", status, f"{status} {text}".strip())
        if status is None or status == 429 or status >= 500:
            return Outcome("retry", status, f"{status} {text}".strip())
        return Outcome("failed", status, f"{status} {text}".strip())
    except requests.RequestException as exc:
        return Outcome("retry", None, f"network: {exc}"[:500])
    except (ValueError, TypeError) as exc:  # keys the encryption cannot use
        return Outcome("failed", None, f"encryption: {exc}"[:500])
    except Exception as exc:  # one bad subscription must not stall the whole outbox
        log.exception("push to subscription %s failed unexpectedly", sub.id)
        return Outcome("failed", None, f"error: {exc!r}"[:500])
    return Outcome("sent", response.status_code)  # type: ignore[union-attr]


def deliver(message: OutboxMessage) -> None:
    """Outbox handler for ``notify.push``: send the digest to each of the person's devices
    not yet reached by it, record each outcome, delete dead subscriptions; raise
    :class:`~server.core.outbox.RetryLater` while some device is worth another try."""
    payload = message.payload
    now = utcnow()
    subs = db.session.execute(
        sa.select(PushSubscription).where(PushSubscription.user_id == payload["user_id"])
        .order_by(PushSubscription.id)).scalars().all()
    previous = {d.subscription_id: d for d in db.session.execute(
        sa.select(PushDelivery).where(PushDelivery.message_id == message.id)).scalars()}
    data = json.dumps(payload["message"], ensure_ascii=False).encode()
    keys = vapid_keys()
    retry: list[str] = []
    with requests.Session() as session:
        for sub in subs:
            done = previous.get(sub.id)
            if done is not None and done.outcome in ("sent", "failed"):
                continue
            result = send_one(sub, data, ttl=int(payload.get("ttl") or TTL_NORMAL),
                              urgency=payload.get("urgency") or "normal",
                              topic=f"yh{message.id}", keys=keys, session=session)
            _record(message, sub, done, result, now)
            if result.outcome == "retry":
                retry.append(f"{sub.device_id}: {result.error}")
    if retry:
        raise outbox.RetryLater("push not delivered to " + "; ".join(retry))


def _record(message: OutboxMessage, sub: PushSubscription, done: PushDelivery | None,
            result: Outcome, now: datetime) -> None:
    sub.last_status = result.status
    if result.outcome == "gone":
        log.info("push subscription %s of user %s is gone (%s): deleted", sub.id, sub.user_id,
                 result.status)
        user = db.session.get(User, sub.user_id)
        append_event(f"user:{user.username if user else sub.user_id}", "push.gone",
                     actor=None, at=now, data={"device": sub.device_id, "status": result.status})
        _delete(sub)
        return
    if done is None:
        done = PushDelivery(message_id=message.id, subscription_id=sub.id, attempts=0)
        db.session.add(done)
    done.outcome, done.status, done.error, done.at = result.outcome, result.status, result.error, now
    done.attempts += 1
    if result.outcome == "sent":
        sub.last_success_at = now
        sub.failure_count = 0
        sub.last_error = None
    else:
        sub.last_failure_at = now
        sub.failure_count += 1
        sub.last_error = result.error
        log.warning("push to user %s device %s failed: %s", sub.user_id, sub.device_id,
                    result.error)


# ---------------------------------------------------------------- wiring


def init_app(app: Flask) -> None:
    """Load (or generate) the VAPID keys — a bad ``VAPID_PRIVATE_KEY`` stops the start with
    a clear message rather than every push later — and register the channel and the outbox
    handler (idempotent: one of each per process)."""
    vapid_keys(app)
    notify.register_channel(WebPushChannel())
    outbox.register_handler(PUSH_TOPIC, deliver)


def worker_ids_under(actor: User) -> sa.Select[tuple[int]]:
    """The grid workers (and village contacts) in the actor's jurisdiction."""
    from hierarchy.scoping import subtree_unit_ids

    return sa.select(User.id).where(
        User.unit_id.in_(subtree_unit_ids(actor.unit)), User.active.is_(True),
        User.is_system.is_(False), User.role.in_([str(Role.grid_worker), str(Role.contact)]))
