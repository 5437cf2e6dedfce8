"""Ticket routes: accept, list, read, events, and every action of the flow."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.orm import joinedload

from grids.models import Grid
from hierarchy.models import Unit, User
from hierarchy.scoping import in_subtree
from server.auth import current_actor
from server.core.audit import Event, append_event
from server.core.db import db, utcnow
from server.core.errors import Conflict, Forbidden, InvalidInput
from server.tickets import operations as ops
from server.tickets import permissions as perm
from server.tickets import schemas
from server.tickets.models import OPEN_STATUSES, Status, Ticket
from server.tickets.queries import get_visible_ticket, visible_tickets
from server.tickets.serialize import event_dict, reporter_dict, ticket_dict

from . import bp
from .common import decode_cursor, encode_cursor, int_arg, json_body, parse, run_write, ticket_answer

LIST_OPTIONS = (
    joinedload(Ticket.unit),
    joinedload(Ticket.assignee),
    # ticket_dict shows the grid's code and name; its members (selectin) are not needed
    joinedload(Ticket.grid).lazyload(Grid.members),
)
DETAIL_OPTIONS = (*LIST_OPTIONS, joinedload(Ticket.accepting_unit))


@bp.post("/tickets")
def accept_ticket():  # type: ignore[no-untyped-def]
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(schemas.AcceptBody, raw)
        ticket = ops.do_accept(ops.check_accept(actor, body))
        return ticket_dict(ticket, actor, detail=True), 201

    return run_write(handler, raw)


def _enum_filter(name: str, allowed: type) -> list[str] | None:
    raw = request.args.get(name)
    if not raw:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    valid = {str(v) for v in allowed}
    bad = [v for v in values if v not in valid]
    if bad:
        raise InvalidInput(f"{name} must be among {sorted(valid)}", field=name)
    return values


@bp.get("/tickets")
def list_tickets():  # type: ignore[no-untyped-def]
    """Tickets visible to the caller, newest first, with keyset (cursor) pagination."""
    actor = current_actor()
    from server.tickets.models import Source, TicketType, Urgency

    limit = int_arg("limit", 50, 1, 200)
    query = visible_tickets(actor).options(*LIST_OPTIONS)
    if statuses := _enum_filter("status", Status):
        query = query.where(Ticket.status.in_(statuses))
    if urgencies := _enum_filter("urgency", Urgency):
        query = query.where(Ticket.urgency.in_(urgencies))
    if types := _enum_filter("type", TicketType):
        query = query.where(Ticket.type.in_(types))
    if sources := _enum_filter("source", Source):
        query = query.where(Ticket.source.in_(sources))
    if unit_code := request.args.get("unit"):
        unit = db.session.execute(sa.select(Unit).where(Unit.code == unit_code)).scalar_one_or_none()
        if unit is None:
            raise InvalidInput(f"no unit with code {unit_code}", field="unit")
        query = query.where(
            Ticket.unit_id.in_(sa.select(Unit.id).where(in_subtree(Unit.path, unit.path)))
        )
    if grid_code := request.args.get("grid"):
        query = query.where(Ticket.grid_id.in_(sa.select(Grid.id).where(Grid.code == grid_code)))
    if assignee := request.args.get("assignee"):
        if assignee == "me":
            query = query.where(Ticket.assignee_id == actor.id)
        else:
            query = query.where(
                Ticket.assignee_id.in_(sa.select(User.id).where(User.username == assignee))
            )
    if request.args.get("overdue") in ("1", "true"):
        query = query.where(Ticket.status.in_(OPEN_STATUSES), Ticket.handling_due < utcnow())
    if external_id := request.args.get("external_id"):
        query = query.where(Ticket.external_id == external_id)
    if q := request.args.get("q"):
        if len(q) > 100:
            raise InvalidInput("q is at most 100 characters", field="q")
        query = query.where(sa.or_(Ticket.title.contains(q, autoescape=True),
                                   Ticket.number == q))
    if (after := decode_cursor(request.args.get("cursor"))) is not None:
        query = query.where(Ticket.id < after)
    rows = db.session.execute(query.order_by(Ticket.id.desc()).limit(limit + 1)).scalars().all()
    items = rows[:limit]
    return jsonify({
        "items": [ticket_dict(t, actor) for t in items],
        "next_cursor": encode_cursor(items[-1].id) if len(rows) > limit else None,
    })


@bp.get("/tickets/<number>")
def get_ticket(number: str):  # type: ignore[no-untyped-def]
    actor = current_actor()
    ticket = get_visible_ticket(actor, number)
    return jsonify(ticket_dict(ticket, actor, detail=True))


@bp.get("/tickets/<number>/events")
def ticket_events(number: str):  # type: ignore[no-untyped-def]
    actor = current_actor()
    ticket = get_visible_ticket(actor, number)
    events = db.session.execute(
        sa.select(Event).where(Event.stream == ticket.stream).order_by(Event.seq)
    ).scalars()
    return jsonify({"number": ticket.number, "items": [event_dict(e) for e in events]})


@bp.post("/tickets/<number>/reveal-reporter")
def reveal_reporter(number: str):  # type: ignore[no-untyped-def]
    """Unmasked reporter details, for the roles that must call back — and it is audited."""

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        ticket = get_visible_ticket(actor, number, lock=True)
        if not perm.can_see_reporter(actor, ticket):
            raise Forbidden("your role sees reporter details masked")
        event = append_event(ticket.stream, "reveal_reporter", actor=actor, ticket_id=ticket.id,
                             head_locked=True)
        ticket.version = event.seq
        return reporter_dict(ticket, actor, reveal=True), 200

    return run_write(handler, {})


def _reassigned_meanwhile(actor: User, ticket: Ticket, body: Any) -> None:
    """409 ``reassigned`` (with the ticket as it is now) instead of a bare 403 when the actor
    worked on this ticket and others changed it since the version the actor saw.

    That is a phone replaying its offline queue after the ticket was given to someone else:
    the worker must see plainly what happened, and keeps what they wrote (issue 4).
    """
    base = getattr(body, "base_version", None)
    if base is None or base >= ticket.version:
        return
    mine = sa.select(Event.id).where(Event.stream == ticket.stream, Event.actor_id == actor.id)
    others = sa.select(Event.id).where(Event.stream == ticket.stream, Event.seq > base,
                                       Event.actor_id.is_distinct_from(actor.id))
    if db.session.execute(mine.limit(1)).first() is None \
            or db.session.execute(others.limit(1)).first() is None:
        return
    raise Conflict(f"the ticket was reassigned since version {base}", code="reassigned",
                   version=ticket.version, status=str(ticket.status),
                   current=ticket_dict(ticket, actor, detail=True))


@bp.post("/tickets/<number>/<action_name>")
def ticket_action(number: str, action_name: str):  # type: ignore[no-untyped-def]
    action = ops.find_action(action_name)
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(action.body, raw)
        ticket = get_visible_ticket(actor, number, lock=True)
        try:
            checked = action.check(actor, ticket, body)
        except Conflict as exc:  # the client sees what the ticket is now
            exc.details["current"] = ticket_dict(ticket, actor, detail=True)
            raise
        except Forbidden:
            _reassigned_meanwhile(actor, ticket, body)
            raise
        event = action.do(checked)
        result, status = ticket_answer(ticket, actor, event)
        refusal = checked.resolved.get("refusal")
        if refusal is not None:  # recorded, and committed, but refused: say so as an error
            return {**refusal.to_dict(), "current": result, "event": result["event"]}, refusal.status
        return result, status

    return run_write(handler, raw)

