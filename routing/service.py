"""Routing a ticket as it is accepted, and the process-wide model cache.

``route_new_ticket`` is the one call ``do_accept`` makes: it runs inside the accept
transaction after the ticket row exists and before the accept event is written, so the
event, the deadlines and the clocks all see the routed ticket. It never commits.

The active model is loaded once per process and kept keyed by its version. A process asks
the database which model is active at most once every :data:`MODEL_CHECK_S` (an accept does
not pay for that query each time: bench/intake.py), so it notices a model activated by
another process within that time and loads its file once; a transaction that activated or
deactivated a model makes its own process ask again as soon as it ends.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from . import urgency as urg
from .classifier import MODEL_FORMAT, CategoryModel, Guess, keyword_guess
from .duplicates import find_duplicates
from .models import EmergencyHandoff, RoutingModel, TicketLink
from .taxonomy import default_taxonomy

log = logging.getLogger(__name__)

_cache_lock = threading.Lock()
_cache: dict[str, Any] = {"version": None, "model": None, "bind": None, "checked_until": 0.0}
#: How long a process trusts its answer to "which model is active" (like the grids' reference
#: tokens, ``grids.models.TOKEN_TTL_S``).
MODEL_CHECK_S = 1.0
#: Set in ``session.info`` by a transaction that changed which model is active.
_TOUCHED = "routing_model_touched"


def load_model_file(path: Path, sha256: str) -> CategoryModel:
    """Unpickle a model file — only the exact file that training wrote (hash checked)."""
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"model file {path} does not match its recorded hash")
    model = pickle.loads(raw)
    if not isinstance(model, CategoryModel) or getattr(model, "format", None) != MODEL_FORMAT:
        raise ValueError(f"model file {path} is not a routing model of format {MODEL_FORMAT}")
    return model


def active_model() -> CategoryModel | None:
    """The active model, loaded once per version; None before any model was trained (or
    when its file is missing: routing falls back to the taxonomy's words and says so)."""
    from server.core.db import db

    bind = db.session.get_bind()
    now = time.monotonic()
    if (_cache["bind"] is bind and _cache["checked_until"] > now
            and not db.session.info.get(_TOUCHED)):
        return _cache["model"]
    row = db.session.execute(
        sa.select(RoutingModel.version, RoutingModel.path, RoutingModel.sha256)
        .where(RoutingModel.active.is_(True)).limit(1)).first()
    key = None if row is None else (row.version, row.sha256)  # another database may have a v1
    if _cache["version"] == key and _cache["bind"] is bind:
        _cache["checked_until"] = now + MODEL_CHECK_S
        return _cache["model"]
    with _cache_lock:
        if row is None:
            _cache["model"] = None
        elif _cache["version"] != key or _cache["bind"] is not bind:
            try:
                model = load_model_file(Path(row.path), row.sha256)
                model.version = row.version
            except (OSError, ValueError, pickle.UnpicklingError, AttributeError) as exc:
                log.error("routing model v%s unusable, using taxonomy keywords: %s",
                          row.version, exc)
                model = None
            _cache["model"] = model
        _cache["version"], _cache["bind"] = key, bind
        _cache["checked_until"] = 0.0 if db.session.info.get(_TOUCHED) else now + MODEL_CHECK_S
    return _cache["model"]


def forget_model() -> None:
    with _cache_lock:
        _cache.update(model=None, version=None, bind=None, checked_until=0.0)


def model_changed(session: Any) -> None:
    """Say that ``session`` changed which model is active: this process asks the database
    again from now on in that transaction, and after it commits or rolls back."""
    session.info[_TOUCHED] = True
    forget_model()


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_on_end(session: Session) -> None:
    if session.info.pop(_TOUCHED, False):
        forget_model()


def classify(title: str, content: str) -> Guess:
    """The category of a text: the active model, or the taxonomy's words before any."""
    model = active_model()
    if model is None:
        return keyword_guess(title, content)
    return model.guess(title, content)


def _stop_unit(ticket: Any, route: str, within: Any) -> Any:
    """The unit at level ``route`` that contains the ticket's place, when it lies below the
    accepting unit (the hotline sends a pension question down to its county) or above it (a
    grid worker's patrol report of unpaid wages goes up to the county); else None."""
    from hierarchy.models import Level, Unit
    from server.core.db import db

    place = ticket.grid.unit if ticket.grid is not None else None
    if place is None and ticket.region_code:
        place = db.session.execute(
            sa.select(Unit).where(Unit.region_code == ticket.region_code, Unit.active.is_(True))
            .order_by(Unit.id).limit(1)).scalars().first()
    if place is None:
        return None
    if route not in Level.__members__:
        return None
    target_depth = Level(route).depth
    if Level(place.level).depth < target_depth:
        return None
    unit = place
    while unit is not None and Level(unit.level).depth > target_depth:
        unit = unit.parent
    if unit is None or unit.id == within.id:
        return None
    if not (unit.is_within(within) or within.is_within(unit)):
        return None
    return unit


def route_new_ticket(ticket: Any, actor: Any, now: datetime, *,
                     operator_category: str | None, operator_urgency: str) -> dict[str, Any]:
    """Category, urgency, duplicates and the category's stop level for a ticket being
    accepted. Changes the ticket (never commits); returns what the accept event records."""
    from escalation.deadlines import initial_deadlines
    from server.core.db import db
    from server.tickets.models import Status

    taxonomy = default_taxonomy()
    record: dict[str, Any] = {}

    # 1. category — an operator's code is kept; the model's guess still explains it
    guess = classify(ticket.title, ticket.content)
    given = taxonomy.get(operator_category)
    if operator_category:
        ticket.category_source = "operator"
        ticket.category_confidence = 1.0
        ticket.category_explanation = {**guess.explanation(), "suggested": guess.code}
    else:
        ticket.category_code = guess.code
        ticket.category_source = guess.source
        ticket.category_confidence = guess.confidence
        ticket.category_explanation = guess.explanation()
    record["category"] = {"code": ticket.category_code, "source": ticket.category_source,
                          "confidence": ticket.category_confidence,
                          "model_version": guess.model_version}

    # 2. urgency — raised, never lowered; emergencies get a pending hand-off record
    verdict = urg.assess(ticket.title, ticket.content)
    raised = urg.raise_only(operator_urgency, verdict.level)
    if raised != str(ticket.urgency):
        ticket.urgency = raised
        deadlines = initial_deadlines(raised, now)
        ticket.response_due = deadlines.response_due
        ticket.handling_due = deadlines.handling_due
        ticket.deadline_provisional = deadlines.provisional
    record["urgency"] = {"detected": verdict.level, "signals": verdict.signals[:6],
                         "raised_from": operator_urgency if raised != operator_urgency else None}
    if verdict.is_emergency:
        ticket.emergency_services = ",".join(verdict.services)
        db.session.add(EmergencyHandoff(ticket_id=ticket.id, services=ticket.emergency_services,
                                        signals=verdict.signals[:10], status="pending",
                                        detected=True, created_at=now))
        record["urgency"]["services"] = verdict.services

    # 3. duplicates — proposed links; "N other reports" on both sides
    candidates = find_duplicates(
        ticket_id=ticket.id, title=ticket.title, content=ticket.content, lng=ticket.lng,
        lat=ticket.lat, grid_id=ticket.grid_id if ticket.grid is None else ticket.grid.id,
        address=ticket.address, accepted_at=now)
    if candidates:
        from server.tickets.models import Ticket

        if db.engine.dialect.name == "postgresql":
            # The counters below change the older tickets' rows. Lock them first, in id
            # order (FOR NO KEY UPDATE, which the links' foreign-key checks do not block):
            # ten neighbours reporting the same pothole at once then queue behind each other
            # instead of deadlocking on each other's counters.
            db.session.execute(
                sa.select(Ticket.id).where(Ticket.id.in_(sorted({c.ticket_id for c in candidates})))
                .order_by(Ticket.id).with_for_update(key_share=True))
        for c in candidates:
            db.session.add(TicketLink(ticket_id=ticket.id, other_id=c.ticket_id, score=c.score,
                                      text_score=c.text_score, distance_m=c.distance_m,
                                      status="proposed", created_at=now))
        # A derived counter on the older tickets: an atomic increment under the locks above.
        db.session.execute(sa.update(Ticket).where(
            Ticket.id.in_([c.ticket_id for c in candidates])).values(
            duplicate_count=Ticket.duplicate_count + 1))
        ticket.duplicate_count = len(candidates)
        # Counts only: the event is shown to whoever sees this ticket, and the others may lie
        # outside their jurisdiction (the links themselves are in ticket_links).
        record["duplicates"] = {"count": len(candidates), "best_score": candidates[0].score}

    # 4. the category's rule: down to a grid, or stop at a level
    category = given or taxonomy.get(ticket.category_code)
    route = category.route if category else "grid"
    record["route"] = route
    if route != "grid":
        unit = _stop_unit(ticket, route, actor.unit)
        if ticket.grid is not None:
            name = category.name if category else ticket.category_code
            ticket.grid_reason = f"按类别「{name}」规则由{_LEVEL_NAMES.get(route, route)}办理，不下沉网格"
            ticket.grid = None
        if unit is not None:
            ticket.unit = unit
            ticket.dispatched_by_unit = actor.unit
            ticket.status = Status.assigned
            record["stopped_at"] = unit.code
    return record


_LEVEL_NAMES = {"village": "村（社区）", "township": "乡镇（街道）", "county": "县（区）级部门",
                "city": "市级部门", "province": "省级部门"}
