"""Ticket actions of smart routing, as ``check_*`` / ``do_*`` pairs.

- correct a ticket's category (station staff and above; the label the next model learns),
- decide a proposed duplicate: ``link`` (same problem, handled together), ``merge`` (the
  newer ticket is closed into the older one, so one grid worker goes once) or ``dismiss``,
- record an emergency hand-off to 110/119/120/122.

Each appends the ticket's hash-chained event and outbox message through the ticket
actions' own recorder, under the ticket row lock the caller took; nothing here commits.
They are ticket actions, so they live with the others in ``server.tickets`` (which uses the
``routing`` domain — its taxonomy and tables — not the other way round), ask
:mod:`permissions` first like every check, and are covered by the same authorization tests.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, StringConstraints

from hierarchy.models import User
from routing.models import (
    COUNTED_LINKS,
    EMERGENCY_SERVICES,
    CategoryCorrection,
    EmergencyHandoff,
    LinkStatus,
    TicketLink,
)
from routing.taxonomy import default_taxonomy
from server.core.audit import Event
from server.core.db import db
from server.core.errors import Conflict, InvalidInput, NotFound

from . import permissions as perm
from .models import OPEN_STATUSES, Status, Ticket
from .operations import Checked, _allow, _clock_facts, _record

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=32)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=2000)


class CategoryBody(_Body):
    category_code: Code
    note: Note | None = None


class LinkBody(_Body):
    note: Note | None = None


class HandoffBody(_Body):
    service: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^(110|119|120|122)$")]
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    note: Note | None = None


# ---------------------------------------------------------------- category correction


def check_correct_category(actor: User, ticket: Ticket, body: CategoryBody) -> Checked:
    _allow(perm.can_correct_category(actor, ticket),
           "only station staff, supervisors or the hotline over this ticket may change its "
           "category")
    category = default_taxonomy().get(body.category_code)
    if category is None:
        raise InvalidInput(f"no category {body.category_code}", code="unknown_category",
                           field="category_code")
    if ticket.category_code == category.code and ticket.category_source in ("correction",
                                                                            "operator"):
        raise Conflict(f"the category is already {category.code}", code="already_there")
    return Checked("correct_category", actor, ticket, body, {"category": category})


def do_correct_category(checked: Checked) -> Event:
    ticket, actor = checked.ticket, checked.actor
    assert ticket is not None
    category = checked.resolved["category"]
    explanation = ticket.category_explanation or {}
    db.session.add(CategoryCorrection(
        ticket_id=ticket.id, from_code=ticket.category_code, to_code=category.code,
        from_source=ticket.category_source, model_version=explanation.get("model_version"),
        actor_id=actor.id, note=checked.body.note, at=checked.now()))
    previous = {"code": ticket.category_code, "source": ticket.category_source,
                "confidence": ticket.category_confidence}
    ticket.category_code = category.code
    ticket.category_source = "correction"
    ticket.category_confidence = 1.0
    return _record(checked, "correct_category", {
        "from": previous, "to": category.code, "name": default_taxonomy().label(category.code),
        "route": category.route, "note": checked.body.note})


# ---------------------------------------------------------------- duplicates


def find_link(ticket: Ticket, other_number: str) -> tuple[TicketLink, Ticket]:
    """The link between ``ticket`` and the ticket numbered ``other_number`` (either way)."""
    other = db.session.execute(sa.select(Ticket).where(Ticket.number == other_number)
                               ).scalar_one_or_none()
    if other is None:
        raise NotFound(f"ticket {other_number} not found", code="ticket_not_found")
    link = db.session.execute(sa.select(TicketLink).where(sa.or_(
        sa.and_(TicketLink.ticket_id == ticket.id, TicketLink.other_id == other.id),
        sa.and_(TicketLink.ticket_id == other.id, TicketLink.other_id == ticket.id),
    ))).scalar_one_or_none()
    if link is None:
        raise NotFound(f"{other_number} is not proposed as a duplicate of {ticket.number}",
                       code="link_not_found")
    return link, other


def check_decide_duplicate(actor: User, ticket: Ticket, link: TicketLink, other: Ticket,
                           decision: str) -> Checked:
    _allow(perm.can_decide_duplicate(actor, ticket),
           "only steering staff over the ticket may decide duplicates")
    if decision not in ("link", "merge", "dismiss"):
        raise NotFound(f"no duplicate decision {decision!r}", code="unknown_action")
    if link.status in (LinkStatus.merged, LinkStatus.dismissed):
        raise Conflict(f"this link is already {link.status}", code="wrong_state",
                       status=link.status)
    if decision == "link" and link.status == LinkStatus.linked:
        raise Conflict("already linked", code="already_there")
    # The newer ticket is merged into the older one, whichever side the caller names.
    newer, older = (ticket, other) if ticket.id > other.id else (other, ticket)
    if decision == "merge":
        if newer.status not in OPEN_STATUSES or older.status not in OPEN_STATUSES:
            raise Conflict("both tickets must be open to merge", code="wrong_state")
        if newer.id != ticket.id:
            raise InvalidInput(f"merge from the newer ticket {newer.number} into "
                               f"{older.number}", code="merge_from_newer")
    return Checked(f"duplicate_{decision}", actor, ticket, None,
                   {"link": link, "other": other, "decision": decision, "older": older})


def do_decide_duplicate(checked: Checked) -> Event:
    ticket, actor = checked.ticket, checked.actor
    assert ticket is not None
    link: TicketLink = checked.resolved["link"]
    other: Ticket = checked.resolved["other"]
    decision: str = checked.resolved["decision"]
    now = checked.now()
    was_counted = link.status in COUNTED_LINKS
    link.status = {"link": LinkStatus.linked, "merge": LinkStatus.merged,
                   "dismiss": LinkStatus.dismissed}[decision]
    link.decided_by_id = actor.id
    link.decided_at = now
    data: dict[str, Any] = {"other": other.number, "decision": decision,
                            "score": link.score}
    if decision == "dismiss" and was_counted:
        db.session.execute(sa.update(Ticket).where(
            Ticket.id.in_([ticket.id, other.id]), Ticket.duplicate_count > 0).values(
            duplicate_count=Ticket.duplicate_count - 1))
        db.session.refresh(ticket, ["duplicate_count"])
    if decision == "merge":
        older: Ticket = checked.resolved["older"]
        ticket.duplicate_of_id = older.id
        ticket.status = Status.closed
        ticket.closed_at = now
        ticket.reply_result = f"与工单 {older.number} 反映同一问题，已并入该工单办理"
        ticket.reply_resolution = "explained"
        # Closing stops its clocks as an approved closure would.
        from escalation.clocks import on_ticket_event

        on_ticket_event(_clock_facts(ticket), "approve", now, {})
        data["into"] = older.number
    return _record(checked, f"duplicate_{decision}", data)


def duplicates_of(ticket: Ticket) -> list[tuple[TicketLink, Ticket]]:
    """Every link of the ticket, either way, with the other ticket; newest first."""
    rows = db.session.execute(
        sa.select(TicketLink, Ticket).join(Ticket, sa.or_(
            sa.and_(TicketLink.ticket_id == ticket.id, Ticket.id == TicketLink.other_id),
            sa.and_(TicketLink.other_id == ticket.id, Ticket.id == TicketLink.ticket_id),
        )).order_by(TicketLink.id.desc())).all()
    return [(link, other) for link, other in rows]


# ---------------------------------------------------------------- emergency hand-off


def check_hand_off(actor: User, ticket: Ticket, body: HandoffBody) -> Checked:
    _allow(perm.can_hand_off(actor, ticket),
           "only the hotline or steering staff over the ticket record hand-offs")
    return Checked("emergency_handoff", actor, ticket, body)


def do_hand_off(checked: Checked) -> Event:
    ticket, actor, body = checked.ticket, checked.actor, checked.body
    assert ticket is not None
    now = checked.now()
    pending = db.session.execute(
        sa.select(EmergencyHandoff).where(EmergencyHandoff.ticket_id == ticket.id,
                                          EmergencyHandoff.status == "pending")
        .order_by(EmergencyHandoff.id)).scalars().first()
    record = pending or EmergencyHandoff(ticket_id=ticket.id, services=body.service,
                                         signals=[], detected=False, created_at=now)
    if pending is None:
        db.session.add(record)
    record.status = "handed_off"
    record.services = body.service if pending is None else _merge_services(
        record.services, body.service)
    record.reference = body.reference
    record.note = body.note
    record.handed_off_at = now
    record.handed_off_by_id = actor.id
    ticket.emergency_services = _merge_services(ticket.emergency_services, body.service)
    return _record(checked, "emergency_handoff", {
        "service": body.service, "service_name": EMERGENCY_SERVICES[body.service],
        "reference": body.reference, "note": body.note, "detected": record.detected})


def _merge_services(existing: str | None, service: str) -> str:
    services = [s for s in (existing or "").split(",") if s]
    if service not in services:
        services.append(service)
    return ",".join(services)[:32]
