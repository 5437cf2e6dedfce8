"""Device reports: the only state change the phone app owns besides the ticket actions.

A report is telemetry sent every few minutes, so it is *not* an audit event each time (the
hash chain would fill with heartbeats). What the audit trail keeps is what a supervisor may
need to reconstruct: a device first seen, and a device becoming stuck or clear again — each
also an outbox message (``device.stuck`` / ``device.clear``) for webhooks and notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hierarchy.models import STEERING_ROLES, Role, Unit, User
from hierarchy.scoping import in_subtree
from server.core.audit import append_event
from server.core.db import as_utc, db, utcnow
from server.core.errors import Forbidden, InvalidInput
from server.core.outbox import queue_message

from .models import Device

#: A queue whose oldest item waited this long has not synced for a reason worth a look.
STUCK_AFTER = timedelta(minutes=30)
#: How far ahead of the server a phone's clock may claim its oldest item is.
CLOCK_SKEW = timedelta(minutes=10)
MAX_ATTENTION_ITEMS = 20
#: Who may see other people's devices: the steering roles and administrators.
DEVICE_VIEW_ROLES = frozenset({*STEERING_ROLES, Role.admin})

Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class AttentionItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ticket: Short | None = None
    action: Short
    code: Short | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    at: datetime | None = None


class DeviceReportBody(BaseModel):
    """What the phone says about itself; unknown fields are ignored (newer apps)."""

    model_config = ConfigDict(extra="ignore", str_max_length=2000)
    device_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=64,
                                                pattern=r"^[A-Za-z0-9._:-]+$")]
    queue_length: int = Field(ge=0, le=1_000_000)
    oldest_item_at: datetime | None = None
    attention: list[AttentionItem] = Field(default_factory=list, max_length=500)
    persisted: bool | None = None
    storage_usage: int | None = Field(default=None, ge=0, le=2**62)
    storage_quota: int | None = Field(default=None, ge=0, le=2**62)
    last_sync_at: datetime | None = None
    app_version: Annotated[str, StringConstraints(max_length=40)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=300)] | None = None


@dataclass(frozen=True)
class CheckedReport:
    actor: User
    body: DeviceReportBody
    device: Device | None
    now: datetime


def is_stuck(device: Device, now: datetime) -> bool:
    """Work the server has not received for ``STUCK_AFTER``, or refused work left waiting."""
    if device.attention_count > 0:
        return True
    oldest = as_utc(device.oldest_item_at)
    return device.queue_length > 0 and oldest is not None and now - oldest >= STUCK_AFTER


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return as_utc(value)


def check_report_device(actor: User, body: DeviceReportBody) -> CheckedReport:
    now = utcnow()
    oldest = _aware(body.oldest_item_at)
    if oldest is not None and oldest > now + CLOCK_SKEW:
        raise InvalidInput("oldest_item_at is in the future; check the phone's clock",
                           code="clock_skew", field="oldest_item_at")
    if body.queue_length == 0 and body.attention:
        raise InvalidInput("attention items are part of the queue; queue_length cannot be 0",
                           field="queue_length")
    device = db.session.execute(
        sa.select(Device).where(Device.user_id == actor.id, Device.device_uid == body.device_id)
        .with_for_update(of=Device)
    ).scalar_one_or_none()
    return CheckedReport(actor, body, device, now)


def do_report_device(checked: CheckedReport) -> Device:
    body, actor, now = checked.body, checked.actor, checked.now
    device = checked.device
    was_stuck = False
    if device is None:
        device = Device(user_id=actor.id, device_uid=body.device_id, first_seen_at=now,
                        queue_length=0, attention_count=0)
        db.session.add(device)
        db.session.flush()
        append_event(f"user:{actor.username}", "device_registered", actor=actor,
                     data={"device": body.device_id, "app_version": body.app_version})
    else:
        was_stuck = is_stuck(device, now)
    attention = [a.model_dump(mode="json", exclude_none=True)
                 for a in body.attention[:MAX_ATTENTION_ITEMS]]
    device.queue_length = body.queue_length
    device.oldest_item_at = _aware(body.oldest_item_at) if body.queue_length else None
    device.attention_count = len(body.attention)
    device.attention = attention or None
    device.persisted = body.persisted
    device.storage_usage = body.storage_usage
    device.storage_quota = body.storage_quota
    device.last_sync_at = _aware(body.last_sync_at) or device.last_sync_at
    device.app_version = body.app_version or device.app_version
    device.user_agent = body.user_agent or device.user_agent
    device.last_report_at = now
    stuck = is_stuck(device, now)
    if stuck != was_stuck:
        kind = "device_stuck" if stuck else "device_clear"
        data = {"device": body.device_id, "queue_length": device.queue_length,
                "attention_count": device.attention_count,
                "oldest_item_at": device.oldest_item_at.isoformat() if device.oldest_item_at
                else None}
        event = append_event(f"user:{actor.username}", kind, actor=actor, data=data)
        queue_message(f"device.{'stuck' if stuck else 'clear'}",
                      {"user": actor.username, "unit": actor.unit.code, **data}, event=event)
    return device


def stuck_devices(actor: User, *, limit: int = 200) -> list[Device]:
    """Stuck devices of users in the actor's jurisdiction, the longest waiting first."""
    if actor.role not in DEVICE_VIEW_ROLES:
        raise Forbidden("only station, supervisor and platform staff see devices",
                        code="forbidden")
    now = utcnow()
    query = (
        sa.select(Device).join(User, User.id == Device.user_id).join(Unit, Unit.id == User.unit_id)
        .where(in_subtree(Unit.path, actor.unit.path))
        .where(sa.or_(Device.attention_count > 0,
                      sa.and_(Device.queue_length > 0, Device.oldest_item_at <= now - STUCK_AFTER)))
        .order_by(Device.oldest_item_at.asc(), Device.id)
        .limit(limit)
    )
    return list(db.session.execute(query).scalars().unique())


def device_dict(device: Device, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    oldest = as_utc(device.oldest_item_at)
    return {
        "device_id": device.device_uid,
        "user": device.user.username,
        "user_name": device.user.display_name,
        "unit": device.user.unit.code,
        "unit_name": device.user.unit.name,
        "queue_length": device.queue_length,
        "oldest_item_at": oldest.isoformat() if oldest else None,
        "oldest_age_s": int((now - oldest).total_seconds()) if oldest else None,
        "attention_count": device.attention_count,
        "attention": device.attention or [],
        "persisted": device.persisted,
        "app_version": device.app_version,
        "last_sync_at": device.last_sync_at.isoformat() if device.last_sync_at else None,
        "last_report_at": device.last_report_at.isoformat(),
        "stuck": is_stuck(device, now),
    }
