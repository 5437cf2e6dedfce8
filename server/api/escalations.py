"""Escalations, notifications, SLA rules, the calendar and the deadline report.

Thin controllers: they load through the scoped ticket query, call one operation of
``escalation.operations`` inside ``run_write`` (one transaction, Idempotency-Key, CSRF), and
serialise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request

from escalation import board, reports
from escalation import operations as esc_ops
from escalation import schemas as esc_schemas
from escalation.models import CalendarDay, CalendarYear, Escalation, Notification, SlaRule
from hierarchy.models import STEERING_ROLES, Role, Unit, User
from hierarchy.scoping import subtree_unit_ids
from server.auth import current_actor
from server.core.db import db, utcnow
from server.core.errors import Forbidden, InvalidInput, NotFound
from server.tickets.models import Ticket
from server.tickets.queries import visible_tickets

from . import bp
from .common import decode_cursor, encode_cursor, int_arg, json_body, parse, run_write


def visible_ticket_ids(actor: User) -> sa.Select[Any]:
    return visible_tickets(actor).with_only_columns(Ticket.id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def escalation_json(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _iso(value) if isinstance(value, datetime) else value
            for key, value in item.items()}


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw in ("1", "true"):
        return True
    if raw in ("0", "false"):
        return False
    raise InvalidInput(f"{name} must be true or false", field=name)


def _unit_arg(name: str) -> Unit | None:
    code = request.args.get(name)
    if not code:
        return None
    unit = db.session.execute(sa.select(Unit).where(Unit.code == code[:32])).scalar_one_or_none()
    if unit is None:
        raise InvalidInput(f"no unit with code {code[:32]}", field=name)
    return unit


def board_filters() -> board.Filters:
    clock = request.args.get("clock") or None
    if clock is not None and clock not in ("sign", "check_in", "reply", "review"):
        raise InvalidInput("clock must be sign, check_in, reply or review", field="clock")
    state = request.args.get("state") or "open"
    if state not in ("open", "all"):
        raise InvalidInput("state must be open or all", field="state")
    return board.Filters(
        open_only=state == "open", acknowledged=_bool_arg("acknowledged"), clock=clock,
        reached_unit=_unit_arg("unit"), township=_unit_arg("township"),
        grid_code=(request.args.get("grid") or None),
        after_id=decode_cursor(request.args.get("cursor")),
    )


@bp.get("/escalations")
def list_escalations():  # type: ignore[no-untyped-def]
    """Open escalations on tickets visible to the caller, newest first (cursor pagination):
    ``ticket`` (its number), ``clock``, ``deadline``, ``level`` reached, ``escalated_at``,
    ``acknowledged``, and more."""
    actor = current_actor()
    limit = int_arg("limit", 50, 1, 200)
    items = board.escalations(visible_ticket_ids(actor), board_filters(), limit + 1)
    page = items[:limit]
    return jsonify({
        "items": [escalation_json(i) for i in page],
        "next_cursor": encode_cursor(page[-1]["id"]) if len(items) > limit else None,
    })


def _load_item(actor: User, item_id: int) -> Escalation:
    item = board.get_item(item_id, visible_ticket_ids(actor))
    if item is None:
        raise NotFound(f"escalation {item_id} not found", code="escalation_not_found")
    return item


@bp.post("/escalations/<int:item_id>/acknowledge")
def acknowledge_escalation(item_id: int):  # type: ignore[no-untyped-def]
    """A supervisor has seen it (idempotent)."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(esc_schemas.AcknowledgeBody, raw)
        item = _load_item(actor, item_id)
        esc_ops.do_acknowledge(esc_ops.check_acknowledge(actor, item), note=body.note)
        found = board.escalations(
            sa.select(sa.literal(item.ticket_id)), board.Filters(open_only=False), 200)
        return escalation_json(next(i for i in found if i["id"] == item.id)), 200

    return run_write(handler, raw)


# ---------------------------------------------------------------- notifications


def notification_json(note: Notification) -> dict[str, Any]:
    return {"id": note.id, "kind": note.kind, "title": note.title, "body": note.body,
            "ticket": note.data.get("number"), "data": note.data, "urgent": note.urgent,
            "created_at": _iso(note.created_at), "read": note.read_at is not None}


@bp.get("/notifications")
def list_notifications():  # type: ignore[no-untyped-def]
    """The caller's in-app notifications, newest first (``unread=true`` for unread only)."""
    actor = current_actor()
    limit = int_arg("limit", 50, 1, 200)
    query = sa.select(Notification).where(Notification.user_id == actor.id)
    if _bool_arg("unread"):
        query = query.where(Notification.read_at.is_(None))
    if (after := decode_cursor(request.args.get("cursor"))) is not None:
        query = query.where(Notification.id < after)
    rows = db.session.execute(query.order_by(Notification.id.desc()).limit(limit + 1)
                              ).scalars().all()
    page = rows[:limit]
    return jsonify({"items": [notification_json(n) for n in page],
                    "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None})


@bp.post("/notifications/read")
def read_notifications():  # type: ignore[no-untyped-def]
    """Mark the caller's notifications read: ``{"ids": [...]}`` or ``{"all": true}``."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        ids = raw.get("ids")
        everything = raw.get("all") is True
        if not everything and (not isinstance(ids, list) or not ids or len(ids) > 500
                               or not all(isinstance(i, int) for i in ids)):
            raise InvalidInput("give ids (a list of up to 500 numbers) or all: true",
                               field="ids")
        query = sa.update(Notification).where(Notification.user_id == actor.id,
                                              Notification.read_at.is_(None))
        if not everything:
            query = query.where(Notification.id.in_(ids))
        result = db.session.execute(query.values(read_at=utcnow()))
        return {"read": result.rowcount or 0}, 200  # type: ignore[attr-defined]

    return run_write(handler, raw)


# ---------------------------------------------------------------- rules


def _may_see_rules(actor: User) -> None:
    if actor.role != Role.admin and actor.role not in STEERING_ROLES:
        raise Forbidden("rules are for administrators and supervisors")


def rule_json(rule: SlaRule, scope: Unit | None) -> dict[str, Any]:
    return {"code": rule.code, "name": rule.name, "clock": rule.clock,
            "scope_unit": scope.code if scope else None, "ticket_type": rule.ticket_type,
            "category_prefix": rule.category_prefix, "urgency": rule.urgency,
            "level": rule.level, "amount": rule.amount, "unit": rule.unit,
            "due_soon_percent": rule.due_soon_percent, "repeat_amount": rule.repeat_amount,
            "repeat_unit": rule.repeat_unit, "top_level": rule.top_level,
            "enabled": rule.enabled, "updated_at": _iso(rule.updated_at)}


@bp.get("/sla-rules")
def list_rules():  # type: ignore[no-untyped-def]
    """System-wide rules and those of the scopes above and below the caller's unit."""
    actor = current_actor()
    _may_see_rules(actor)
    rows = db.session.execute(
        sa.select(SlaRule, Unit).outerjoin(Unit, Unit.id == SlaRule.scope_unit_id)
        .order_by(SlaRule.clock, SlaRule.id)).all()
    mine = actor.unit.path
    items = [rule_json(r, u) for r, u in rows
             if u is None or mine.startswith(u.path) or u.path.startswith(mine)]
    return jsonify({"items": items})


@bp.post("/sla-rules")
def save_rule():  # type: ignore[no-untyped-def]
    """Create or replace a rule; open deadlines are recomputed in the same transaction."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(esc_schemas.RuleBody, raw)
        esc_ops.state()
        row, report = esc_ops.do_save_rule(esc_ops.check_save_rule(actor, body))
        scope = db.session.get(Unit, row.scope_unit_id) if row.scope_unit_id else None
        return {**rule_json(row, scope), "recomputed": report.__dict__}, 200

    return run_write(handler, raw)


@bp.post("/sla-rules/<code>/<verb>")
def enable_rule(code: str, verb: str):  # type: ignore[no-untyped-def]
    """``enable`` or ``disable`` a rule (disabling clears its escalations, stops its alerts)."""
    current_actor()
    if verb not in ("enable", "disable"):
        raise NotFound(f"no action {verb!r}", code="unknown_action")

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        esc_ops.state()
        checked = esc_ops.check_set_rule_enabled(actor, code[:64], verb == "enable")
        report = esc_ops.do_set_rule_enabled(checked)
        return {"code": code, "enabled": verb == "enable", "recomputed": report.__dict__}, 200

    return run_write(handler, {"verb": verb})


# ---------------------------------------------------------------- calendar


@bp.get("/calendar")
def get_calendar():  # type: ignore[no-untyped-def]
    """The exceptions of a year (holidays on weekdays, working weekends) and whether the
    year has been entered (else its deadlines are provisional)."""
    current_actor()
    year = int_arg("year", utcnow().year, 2000, 2100)
    days = db.session.execute(
        sa.select(CalendarDay).where(CalendarDay.day >= date(year, 1, 1),
                                     CalendarDay.day <= date(year, 12, 31))
        .order_by(CalendarDay.day)).scalars().all()
    entered = db.session.get(CalendarYear, year)
    return jsonify({
        "year": year, "entered": entered is not None,
        "source": entered.source if entered else None,
        "days": [{"day": d.day.isoformat(), "is_workday": d.is_workday, "name": d.name,
                  "source": d.source} for d in days],
    })


@bp.post("/calendar/days")
def set_calendar_day():  # type: ignore[no-untyped-def]
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(esc_schemas.CalendarDayBody, raw)
        report = esc_ops.do_set_day(esc_ops.check_set_day(actor, body))
        return {"day": body.day.isoformat(), "is_workday": body.is_workday,
                "recomputed": report.__dict__}, 200

    return run_write(handler, raw)


@bp.post("/calendar/years")
def enter_calendar_year():  # type: ignore[no-untyped-def]
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(esc_schemas.CalendarYearBody, raw)
        report = esc_ops.do_enter_year(esc_ops.check_enter_year(actor, body))
        return {"year": body.year, "recomputed": report.__dict__}, 200

    return run_write(handler, raw)


# ---------------------------------------------------------------- report


def report_range() -> tuple[datetime, datetime]:
    """``from`` / ``to`` (ISO dates, Shanghai days; default: the last 8 weeks)."""
    from escalation.calendar import SHANGHAI

    def day(name: str) -> date | None:
        raw = request.args.get(name)
        if not raw:
            return None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            raise InvalidInput(f"{name} must be a date like 2025-01-31", field=name) from None

    today = utcnow().astimezone(SHANGHAI).date()
    end = day("to") or today
    start = day("from") or date.fromordinal(end.toordinal() - 55)
    if start > end or (end - start).days > 400:
        raise InvalidInput("from must be before to, at most 400 days apart", field="from")
    lo = datetime.combine(start, datetime.min.time(), tzinfo=SHANGHAI).astimezone(UTC)
    hi = datetime.combine(date.fromordinal(end.toordinal() + 1), datetime.min.time(),
                          tzinfo=SHANGHAI).astimezone(UTC)
    return lo, hi


def report_scope(actor: User) -> Unit:
    if actor.role == Role.grid_worker:
        raise Forbidden("reports are for station staff and supervisors")
    unit = _unit_arg("unit") or actor.unit
    if not unit.is_within(actor.unit):
        raise NotFound("unit not found", code="unit_not_found")
    return unit


def report_ticket_ids(actor: User, unit: Unit) -> sa.Select[Any]:
    return visible_ticket_ids(actor).where(Ticket.unit_id.in_(subtree_unit_ids(unit)))


@bp.get("/escalations/report")
def escalation_report():  # type: ignore[no-untyped-def]
    """On-time rates, overdue counts and durations, repeat escalations — per township, per
    grid and per week — computed from the ticket events alone."""
    actor = current_actor()
    unit = report_scope(actor)
    lo, hi = report_range()
    result = reports.build(report_ticket_ids(actor, unit), lo, hi)
    return jsonify(result.as_json())


def openapi_paths() -> dict[str, Any]:
    """This module's entries of the OpenAPI document."""
    def q(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": {"type": "string"}}

    ok = {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"type": "object"}}}}}
    return {
        "/api/v1/escalations": {"get": {
            "summary": "Open escalations visible to the caller", "operationId": "listEscalations",
            "parameters": [q("state", "open (default) or all"), q("acknowledged", "true/false"),
                           q("clock", "sign, check_in, reply, review"),
                           q("unit", "reached this unit or below"),
                           q("township", "held in this township"), q("grid", "grid code"),
                           q("cursor", "from next_cursor"), q("limit", "1–200")],
            "responses": ok}},
        "/api/v1/escalations/{id}/acknowledge": {"post": {
            "summary": "Acknowledge an escalation", "operationId": "acknowledgeEscalation",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": ok}},
        "/api/v1/escalations/report": {"get": {
            "summary": "Deadline report (from events)", "operationId": "escalationReport",
            "parameters": [q("from", "ISO date"), q("to", "ISO date"), q("unit", "unit code")],
            "responses": ok}},
        "/api/v1/notifications": {"get": {
            "summary": "The caller's notifications", "operationId": "listNotifications",
            "parameters": [q("unread", "true for unread only"), q("cursor", "cursor")],
            "responses": ok}},
    }

