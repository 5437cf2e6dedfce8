"""Smart-routing routes: the taxonomy, a category preview, corrections, duplicates,
emergency hand-offs and the model history. Each loads (scoped to the actor), checks, calls
one operation and serializes; writes go through ``run_write`` (one commit, idempotent)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from flask import jsonify
from pydantic import BaseModel, ConfigDict, StringConstraints

from hierarchy.models import Role, User
from routing.models import EMERGENCY_SERVICES, EmergencyHandoff, RoutingModel
from routing.service import classify
from routing.taxonomy import default_taxonomy
from routing.urgency import assess
from server.auth import current_actor
from server.core.db import db
from server.core.errors import Forbidden
from server.tickets import routing_operations as rops
from server.tickets.models import Ticket
from server.tickets.queries import get_visible_ticket, visible_clause

from . import bp
from .common import json_body, parse, run_write, ticket_answer


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=10000)
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=10000)]


@bp.get("/categories")
def list_categories():  # type: ignore[no-untyped-def]
    """The taxonomy with each category's rule: down to a grid, or the level it stops at."""
    current_actor()
    taxonomy = default_taxonomy()
    return jsonify({"items": [
        {"code": c.code, "name": c.name, "level": c.level, "parent": c.parent_code,
         "route": c.route, "label": taxonomy.label(c.code)}
        for c in taxonomy.categories.values()]})


@bp.post("/routing/preview")
def preview_routing():  # type: ignore[no-untyped-def]
    """What routing would say about a text being typed (nothing is stored)."""
    actor = current_actor()
    if actor.role == Role.grid_worker:
        raise Forbidden("routing previews are for intake and steering staff")
    body = parse(PreviewBody, json_body())
    guess = classify(body.title, body.content)
    verdict = assess(body.title, body.content)
    return jsonify({
        "category_code": guess.code, "category_label": default_taxonomy().label(guess.code),
        "confidence": guess.confidence, "route": guess.route,
        "explanation": guess.explanation(),
        "urgency": verdict.level, "emergency_services": verdict.services,
        "signals": verdict.signals,
    })


@bp.post("/tickets/<number>/category")
def correct_category(number: str):  # type: ignore[no-untyped-def]
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(rops.CategoryBody, raw)
        ticket = get_visible_ticket(actor, number, lock=True)
        event = rops.do_correct_category(rops.check_correct_category(actor, ticket, body))
        return ticket_answer(ticket, actor, event)

    return run_write(handler, raw)


def _link_json(link: Any, other: Any, viewer: User) -> dict[str, Any]:
    return {"number": other.number, "title": other.title, "status": str(other.status),
            "link_status": link.status, "score": link.score, "text_score": link.text_score,
            "distance_m": link.distance_m, "direction": "older" if other.id < link.ticket_id
            or other.id == link.other_id else "newer",
            "created_at": link.created_at.isoformat()}


@bp.get("/tickets/<number>/duplicates")
def list_duplicates(number: str):  # type: ignore[no-untyped-def]
    """The ticket's proposed and decided duplicates that the caller can see."""
    actor = current_actor()
    ticket = get_visible_ticket(actor, number)
    links = rops.duplicates_of(ticket)
    # Only the other tickets the caller may see (one query for all of them).
    visible = set(db.session.execute(sa.select(Ticket.id).where(
        Ticket.id.in_([other.id for _, other in links]), visible_clause(actor))).scalars())
    items = [_link_json(link, other, actor) for link, other in links if other.id in visible]
    return jsonify({"number": ticket.number, "duplicate_count": ticket.duplicate_count,
                    "items": items})


@bp.post("/tickets/<number>/duplicates/<other>/<decision>")
def decide_duplicate(number: str, other: str, decision: str):  # type: ignore[no-untyped-def]
    """``link``, ``merge`` (the newer into the older) or ``dismiss`` a proposed duplicate."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        parse(rops.LinkBody, raw)
        ticket = get_visible_ticket(actor, number, lock=True)
        get_visible_ticket(actor, other)  # 404 when the other one is out of sight
        link, other_ticket = rops.find_link(ticket, other)
        event = rops.do_decide_duplicate(
            rops.check_decide_duplicate(actor, ticket, link, other_ticket, decision))
        return ticket_answer(ticket, actor, event)

    return run_write(handler, raw)


@bp.post("/tickets/<number>/emergency-handoff")
def emergency_handoff(number: str):  # type: ignore[no-untyped-def]
    """Record that the ticket was handed to 110/119/120/122 (with their reference)."""
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(rops.HandoffBody, raw)
        ticket = get_visible_ticket(actor, number, lock=True)
        event = rops.do_hand_off(rops.check_hand_off(actor, ticket, body))
        return ticket_answer(ticket, actor, event)

    return run_write(handler, raw)


@bp.get("/tickets/<number>/emergency-handoffs")
def list_handoffs(number: str):  # type: ignore[no-untyped-def]
    actor = current_actor()
    ticket = get_visible_ticket(actor, number)
    rows = db.session.execute(sa.select(EmergencyHandoff).where(
        EmergencyHandoff.ticket_id == ticket.id).order_by(EmergencyHandoff.id)).scalars()
    return jsonify({"number": ticket.number, "items": [
        {"services": r.services.split(","),
         "service_names": [EMERGENCY_SERVICES.get(s, s) for s in r.services.split(",")],
         "status": r.status, "detected": r.detected, "signals": r.signals,
         "reference": r.reference, "note": r.note, "created_at": r.created_at.isoformat(),
         "handed_off_at": r.handed_off_at.isoformat() if r.handed_off_at else None}
        for r in rows]})


@bp.get("/routing/models")
def list_models():  # type: ignore[no-untyped-def]
    """Trained models, newest first, with their held-out metrics and the decision made."""
    actor = current_actor()
    if actor.role not in (Role.admin, Role.platform, Role.supervisor):
        raise Forbidden("model history is for administrators and supervisors")
    rows = db.session.execute(sa.select(RoutingModel).order_by(RoutingModel.version.desc())
                              .limit(50)).scalars()
    return jsonify({"items": [
        {"version": r.version, "active": r.active, "metrics": r.metrics, "n_train": r.n_train,
         "n_corrections": r.n_corrections, "decision": r.decision,
         "created_at": r.created_at.isoformat(),
         "activated_at": r.activated_at.isoformat() if r.activated_at else None}
        for r in rows]})


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """The routing routes for the OpenAPI document, and the schemas they refer to."""
    from .openapi import IDEMPOTENCY, NUMBER, _body, _responses

    components: dict[str, Any] = {}
    for model in (PreviewBody, rops.CategoryBody, rops.LinkBody, rops.HandoffBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    other = {"name": "other", "in": "path", "required": True, "schema": {"type": "string"}}
    decision = {"name": "decision", "in": "path", "required": True,
                "schema": {"type": "string", "enum": ["link", "merge", "dismiss"]}}
    paths = {
        "/api/v1/categories": {"get": {
            "summary": "The category taxonomy and its routing rules", "operationId": "categories",
            "responses": _responses(200)}},
        "/api/v1/routing/preview": {"post": {
            "summary": "Category and urgency a text would get (nothing stored)",
            "operationId": "routingPreview", "requestBody": _body(PreviewBody),
            "responses": _responses(200, None, 403)}},
        "/api/v1/routing/models": {"get": {
            "summary": "Trained category models and their held-out metrics",
            "operationId": "routingModels", "responses": _responses(200, None, 403)}},
        "/api/v1/tickets/{number}/category": {"post": {
            "summary": "Correct the ticket's category (the next model learns from it)",
            "operationId": "correctCategory", "parameters": [NUMBER, IDEMPOTENCY],
            "requestBody": _body(rops.CategoryBody),
            "responses": _responses(200, None, 403, 404, 409)}},
        "/api/v1/tickets/{number}/duplicates": {"get": {
            "summary": "Proposed and decided duplicates (\"N other reports\")",
            "operationId": "ticketDuplicates", "parameters": [NUMBER],
            "responses": _responses(200, None, 404)}},
        "/api/v1/tickets/{number}/duplicates/{other}/{decision}": {"post": {
            "summary": "Link, merge (newer into older) or dismiss a proposed duplicate",
            "operationId": "decideDuplicate", "parameters": [NUMBER, other, decision, IDEMPOTENCY],
            "requestBody": _body(rops.LinkBody),
            "responses": _responses(200, None, 403, 404, 409)}},
        "/api/v1/tickets/{number}/emergency-handoff": {"post": {
            "summary": "Record the hand-off to 110/119/120/122",
            "operationId": "emergencyHandoff", "parameters": [NUMBER, IDEMPOTENCY],
            "requestBody": _body(rops.HandoffBody),
            "responses": _responses(200, None, 403, 404)}},
        "/api/v1/tickets/{number}/emergency-handoffs": {"get": {
            "summary": "Emergencies detected in the ticket and their hand-offs",
            "operationId": "emergencyHandoffs", "parameters": [NUMBER],
            "responses": _responses(200, None, 404)}},
    }
    return paths, components
