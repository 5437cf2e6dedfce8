"""Tickets and events as JSON, with personal data masked unless the viewer needs it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hierarchy.models import User
from server.core.audit import Event
from server.core.crypto import mask_name, mask_phone
from server.core.db import utcnow

from . import permissions as perm
from .models import STATUS_LABELS, Status, Ticket

DUE_SOON_FRACTION = 0.8


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def deadline_state(start: datetime | None, due: datetime | None, now: datetime) -> str | None:
    """'overdue', 'due_soon' (80 % of the time used) or 'ok'."""
    if due is None:
        return None
    if now > due:
        return "overdue"
    if start is not None and due > start and now >= start + timedelta(
        seconds=(due - start).total_seconds() * DUE_SOON_FRACTION
    ):
        return "due_soon"
    return "ok"


def reporter_dict(ticket: Ticket, viewer: User, *, reveal: bool = False) -> dict[str, Any]:
    if ticket.reporter_anonymous and not (reveal and viewer.role == "platform"):
        return {"anonymous": True, "name": None, "phone": None, "masked": True}
    full = reveal and perm.can_see_reporter(viewer, ticket)
    return {
        "anonymous": ticket.reporter_anonymous,
        "name": ticket.reporter_name if full else mask_name(ticket.reporter_name),
        "phone": ticket.reporter_phone if full else mask_phone(ticket.reporter_phone),
        "masked": not full,
    }


def ticket_dict(ticket: Ticket, viewer: User, *, detail: bool = False) -> dict[str, Any]:
    now = utcnow()
    open_ = ticket.status != Status.closed
    responded = ticket.signed_at is not None or ticket.status not in (
        Status.accepted, Status.assigned)
    body: dict[str, Any] = {
        "number": ticket.number,
        "external_id": ticket.external_id,
        "status": str(ticket.status),
        "status_label": STATUS_LABELS[Status(ticket.status)],
        "source": str(ticket.source),
        "type": str(ticket.type),
        "title": ticket.title,
        "category_code": ticket.category_code,
        "urgency": str(ticket.urgency),
        "location": None if ticket.lng is None else {"lng": ticket.lng, "lat": ticket.lat,
                                                      "crs": "wgs84"},
        "address": ticket.address,
        "region_code": ticket.region_code,
        "grid": ticket.grid.code if ticket.grid else None,
        "grid_name": ticket.grid.name if ticket.grid else None,
        "grid_reason": ticket.grid_reason,
        "unit": ticket.unit.code,
        "unit_name": ticket.unit.name,
        "assignee": ticket.assignee.username if ticket.assignee else None,
        "assignee_name": ticket.assignee.display_name if ticket.assignee else None,
        "accepted_at": _iso(ticket.accepted_at),
        "response_due": _iso(ticket.response_due),
        "handling_due": _iso(ticket.handling_due),
        "deadline_provisional": ticket.deadline_provisional,
        "response_state": None if responded or not open_ else deadline_state(
            ticket.accepted_at, ticket.response_due, now),
        "handling_state": deadline_state(ticket.accepted_at, ticket.handling_due, now)
        if open_ else None,
        "version": ticket.version,
        "updated_at": _iso(ticket.updated_at),
    }
    if detail:
        body |= {
            "content": ticket.content,
            "reporter": reporter_dict(ticket, viewer),
            "accepting_unit": ticket.accepting_unit.code,
            "signed_at": _iso(ticket.signed_at),
            "checked_in_at": _iso(ticket.checked_in_at),
            "replied_at": _iso(ticket.replied_at),
            "closed_at": _iso(ticket.closed_at),
            "reply": None if ticket.reply_result is None else {
                "result": ticket.reply_result, "resolution": ticket.reply_resolution},
            "extension": {
                "pending_days": ticket.extension_days_requested,
                "reason": ticket.extension_reason,
                "granted": ticket.extension_count,
            },
            "urge_count": ticket.urge_count,
            "follow_up": None if ticket.followed_up_at is None else {
                "reached": ticket.followup_reached, "satisfaction": ticket.satisfaction,
                "comment": ticket.followup_comment, "at": _iso(ticket.followed_up_at)},
            "reopen_count": ticket.reopen_count,
        }
    body |= routing_fields(ticket, viewer, detail=detail)
    return body


def routing_fields(ticket: Ticket, viewer: User, *, detail: bool) -> dict[str, Any]:
    """Smart routing (issue 6): the category's label, confidence and source, "N other
    reports", and emergency services; the explanation only in detail (it is the longest)."""
    from routing.taxonomy import default_taxonomy

    count = ticket.duplicate_count or 0
    out: dict[str, Any] = {
        "category_label": default_taxonomy().label(ticket.category_code),
        "category_confidence": ticket.category_confidence,
        "category_source": ticket.category_source,
        "duplicate_count": count,
        "duplicate_label": f"另有{count}条相同反映" if count else None,
        "emergency_services": ticket.emergency_services.split(",")
        if ticket.emergency_services else [],
    }
    if detail:
        out["category_explanation"] = _visible_similar(ticket.category_explanation, viewer)
        out["duplicate_of"] = None
        if ticket.duplicate_of_id is not None:
            from server.core.db import db

            primary = db.session.get(Ticket, ticket.duplicate_of_id)
            out["duplicate_of"] = primary.number if primary is not None else None
    return out


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "actor": event.actor_name,
        "at": _iso(event.at),
        "data": event.data,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def _visible_similar(explanation: dict[str, Any] | None, viewer: User) -> dict[str, Any] | None:
    """The explanation's "similar past tickets", less those outside the viewer's jurisdiction
    (one query, only when there are any)."""
    if not explanation or not explanation.get("similar"):
        return explanation
    import sqlalchemy as sa

    from server.core.db import db

    from .queries import visible_clause

    numbers = [s["ticket"] for s in explanation["similar"]]
    seen = set(db.session.execute(sa.select(Ticket.number).where(
        Ticket.number.in_(numbers), visible_clause(viewer))).scalars())
    return {**explanation, "similar": [s for s in explanation["similar"] if s["ticket"] in seen]}
