"""Web Push subscriptions, the VAPID public key, and who push does not reach.

The phone's ``push.js`` asks for the key, subscribes, and POSTs the subscription with its
device id on every app start (a renewal); ``DELETE`` removes it (logging out, turning
notifications off). Steering staff read ``/push/status`` to see which of their workers push
does not reach — no device, or every device failing — so nobody relies on a channel that is
silently down. The controllers are thin: the rules live in ``escalation/push.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from flask import current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from escalation import push
from hierarchy.models import STEERING_ROLES, Role, Unit, User
from hierarchy.scoping import in_subtree
from server.auth import current_actor
from server.core.db import db
from server.core.errors import Forbidden, InvalidInput

from . import bp
from .common import decode_cursor, encode_cursor, int_arg, json_body, parse, run_write

DeviceId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=64,
                                            pattern=r"^[A-Za-z0-9_-]+$")]
B64Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=16, max_length=128,
                                          pattern=r"^[A-Za-z0-9_-]+=*$")]


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")
    p256dh: B64Url
    auth: B64Url


class PushSubscriptionJSON(BaseModel):
    """What the browser's ``PushSubscription.toJSON()`` gives."""

    model_config = ConfigDict(extra="ignore")
    endpoint: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8,
                                               max_length=1000)]
    #: The browser's name: milliseconds since the epoch, or null.
    expirationTime: float | None = Field(default=None, ge=0, le=4_102_444_800_000)  # 2100
    keys: PushKeys


class SubscribeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: DeviceId
    subscription: PushSubscriptionJSON
    user_agent: Annotated[str, StringConstraints(max_length=300)] | None = None


class UnsubscribeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: DeviceId | None = None
    endpoint: Annotated[str, StringConstraints(min_length=8, max_length=1000)] | None = None


def _allow_insecure() -> bool:
    """http and loopback endpoints: tests, or an intranet push service set up on purpose."""
    return bool(current_app.config.get("YIHAO_PUSH_ALLOW_INSECURE"))


@bp.get("/push/vapid-public-key")
def vapid_public_key():  # type: ignore[no-untyped-def]
    """The ``applicationServerKey`` the browser subscribes with (base64url, uncompressed)."""
    return jsonify({"public_key": push.vapid_keys().public_key})


@bp.get("/push/subscriptions")
def list_subscriptions():  # type: ignore[no-untyped-def]
    """The caller's own devices, each with the outcome of its last push."""
    actor = current_actor()
    subs = db.session.execute(
        sa.select(push.PushSubscription).where(push.PushSubscription.user_id == actor.id)
        .order_by(push.PushSubscription.id)).scalars().all()
    health = push.push_health([actor.id]).get(actor.id) or push.unreachable_state()
    return jsonify({"items": [push.subscription_json(s) for s in subs],
                    "state": health["state"]})


@bp.post("/push/subscriptions")
def subscribe():  # type: ignore[no-untyped-def]
    """Create (201) or renew (200) this device's subscription; the app sends it on every
    start, so a rotated endpoint or a cleared failure record is picked up at once."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(SubscribeBody, raw)
        expires = body.subscription.expirationTime
        given = push.SubscriptionInput(
            device_id=body.device_id, endpoint=body.subscription.endpoint,
            p256dh=body.subscription.keys.p256dh, auth=body.subscription.keys.auth,
            expires_at=datetime.fromtimestamp(expires / 1000, UTC) if expires else None,
            user_agent=body.user_agent or request.headers.get("User-Agent"))
        checked = push.check_subscribe(actor, given, allow_insecure=_allow_insecure())
        sub, created = push.do_subscribe(checked)
        return push.subscription_json(sub), 201 if created else 200

    return run_write(handler, raw)


@bp.delete("/push/subscriptions")
def unsubscribe():  # type: ignore[no-untyped-def]
    """Remove one of the caller's subscriptions, named by ``device_id`` or ``endpoint``."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(UnsubscribeBody, raw)
        sub = push.check_unsubscribe(actor, device_id=body.device_id, endpoint=body.endpoint)
        push.do_unsubscribe(actor, sub)
        return {"deleted": True}, 200

    return run_write(handler, raw)


@bp.delete("/push/subscriptions/<device_id>")
def unsubscribe_device(device_id: str):  # type: ignore[no-untyped-def]
    """The same, with the device id in the path."""

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        sub = push.check_unsubscribe(actor, device_id=device_id[:64], endpoint=None)
        push.do_unsubscribe(actor, sub)
        return {"deleted": True}, 200

    return run_write(handler, {"device_id": device_id[:64]})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@bp.get("/push/status")
def push_status():  # type: ignore[no-untyped-def]
    """Grid workers and village contacts in the caller's jurisdiction with their push state
    (``ok``, ``failing``, ``none``); ``state=failing,none`` lists those push does not reach.
    Steering staff and administrators only."""
    actor = current_actor()
    if actor.role != Role.admin and actor.role not in STEERING_ROLES:
        raise Forbidden("push status is for steering staff")
    limit = int_arg("limit", 100, 1, 500)
    wanted = {s for s in (request.args.get("state") or "").split(",") if s}
    if not wanted <= {"ok", "failing", "none"}:
        raise InvalidInput("state must be ok, failing or none (comma-separated)", field="state")
    root = actor.unit
    if code := request.args.get("unit"):
        unit = db.session.execute(sa.select(Unit).where(Unit.code == code[:32])).scalar_one_or_none()
        if unit is None or not unit.is_within(actor.unit):
            raise InvalidInput(f"no unit {code[:32]} in your jurisdiction", field="unit")
        root = unit
    query = (sa.select(User.id, User.username, User.display_name, User.role, Unit.code)
             .join(Unit, Unit.id == User.unit_id)
             .where(in_subtree(Unit.path, root.path), User.active.is_(True),
                    User.is_system.is_(False),
                    User.role.in_([str(Role.grid_worker), str(Role.contact)]))
             .order_by(User.id))
    if (after := decode_cursor(request.args.get("cursor"))) is not None:
        query = query.where(User.id > after)
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    # The state is known only after the health lookup: read pages until this one is full.
    while True:
        people = db.session.execute(query.limit(limit)).all()
        health = push.push_health([p.id for p in people])
        for person in people:
            state = health.get(person.id) or push.unreachable_state()
            if wanted and state["state"] not in wanted:
                continue
            items.append({"user": person.username, "name": person.display_name,
                          "role": str(person.role), "unit": person.code,
                          **{k: _iso(v) if isinstance(v, datetime) else v
                             for k, v in state.items()}})
            if len(items) >= limit:
                next_cursor = encode_cursor(person.id)
                break
        if next_cursor is not None or len(people) < limit:
            break
        query = query.where(User.id > people[-1].id)
    return jsonify({"items": items, "next_cursor": next_cursor})


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """The push routes and their body schemas for the OpenAPI document (the event stream is
    not JSON: docs/push.md describes it)."""
    from .openapi import _query, _responses

    body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/SubscribeBody"}}}}
    gone = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/UnsubscribeBody"}}}}
    device = {"name": "device_id", "in": "path", "required": True,
              "schema": {"type": "string", "maxLength": 64}}
    paths = {
        "/api/v1/push/vapid-public-key": {"get": {
            "summary": "The VAPID public key to subscribe with", "operationId": "pushKey",
            "responses": _responses(200)}},
        "/api/v1/push/subscriptions": {
            "get": {"summary": "The caller's devices and their last push",
                    "operationId": "pushSubscriptions", "responses": _responses(200)},
            "post": {"summary": "Create (201) or renew (200) this device's subscription",
                     "operationId": "pushSubscribe", "requestBody": body,
                     "responses": {**_responses(201, None, 403),
                                   "200": _responses(200)["200"]}},
            "delete": {"summary": "Remove one of the caller's subscriptions",
                       "operationId": "pushUnsubscribe", "requestBody": gone,
                       "responses": _responses(200, None, 404)}},
        "/api/v1/push/subscriptions/{device_id}": {"delete": {
            "summary": "Remove the subscription of one of the caller's devices",
            "operationId": "pushUnsubscribeDevice", "parameters": [device],
            "responses": _responses(200, None, 404)}},
        "/api/v1/push/status": {"get": {
            "summary": "Workers in the caller's jurisdiction whom push reaches, or not",
            "operationId": "pushStatus",
            "parameters": [_query("state", "ok, failing, none (comma-separated)"),
                           _query("unit", "a unit code within the caller's jurisdiction"),
                           _query("limit", "1–500", type="integer", minimum=1, maximum=500),
                           _query("cursor", "from next_cursor")],
            "responses": _responses(200, None, 403)}},
    }
    schemas: dict[str, Any] = {}
    for model in (SubscribeBody, UnsubscribeBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return paths, schemas
