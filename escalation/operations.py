"""State changes of the escalation domain, as ``check_*`` / ``do_*`` pairs.

Rules and the calendar are edited here (each edit audited and followed, in the same
transaction, by the set-based recomputation of open clocks), and supervisors acknowledge
board items. Nothing here commits. Ticket actions (urge, reassign, extend) stay ticket
actions in ``server.tickets.operations``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from hierarchy.models import STEERING_ROLES, Role, Unit, User
from server.core.audit import append_event
from server.core.db import db, utcnow
from server.core.errors import Conflict, Forbidden, InvalidInput, NotFound

from . import calendar as cal_mod
from . import rules as rules_mod
from .models import CalendarDay, CalendarYear, Escalation, EscalationState, SlaRule
from .recompute import RecomputeReport, recompute_open
from .schemas import CalendarDayBody, CalendarYearBody, RuleBody

RULE_SCOPE_LEVELS = ("province", "city", "county")
RULES_STREAM = "sla:rules"
CALENDAR_STREAM = "calendar"


@dataclass(frozen=True)
class Checked:
    action: str
    actor: User | None
    body: Any
    resolved: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- state and seeding


def _token() -> str:
    return uuid.uuid4().hex


def state(lock: bool = True) -> EscalationState:
    """The state row (locked: edits of rules and calendar are serialised), seeding the
    calendar and the default rules first if they never were."""
    row = db.session.get(EscalationState, 1, with_for_update=lock)
    if row is None:
        seed()
        row = db.session.get(EscalationState, 1, with_for_update=lock)
        assert row is not None
    return row


def seed(now: datetime | None = None) -> bool:
    """Seed the calendar from the package and the default rules, where empty. Idempotent;
    returns True when anything was added. (The migration does the same on a new database.)"""
    now = now or utcnow()
    added = False
    if db.session.execute(sa.select(sa.func.count()).select_from(CalendarYear)).scalar_one() == 0:
        _import_package_years(sorted(cal_mod.package_years()), now)
        added = True
    if db.session.execute(sa.select(sa.func.count()).select_from(SlaRule)).scalar_one() == 0:
        db.session.execute(sa.insert(SlaRule), [
            {**row, "created_at": now, "updated_at": now} for row in rules_mod.seed_rows()])
        added = True
    if db.session.get(EscalationState, 1) is None:
        db.session.add(EscalationState(id=1, calendar_version=1, calendar_token=_token(),
                                       rules_token=_token(), updated_at=now))
        added = True
    db.session.flush()
    if added:
        cal_mod.forget_cached()
        rules_mod.forget_cached()
    return added


def _import_package_years(years: list[int], now: datetime) -> None:
    exceptions = cal_mod.package_exceptions(years)
    if exceptions:
        db.session.execute(sa.insert(CalendarDay), [
            {"day": d, "is_workday": w, "name": n, "source": "package", "updated_at": now}
            for d, (w, n) in sorted(exceptions.items())])
    db.session.execute(sa.insert(CalendarYear), [
        {"year": y, "source": "package", "entered_at": now} for y in years])


# ---------------------------------------------------------------- rules


def _rule_scope(actor: User, code: str | None) -> Unit | None:
    if code is None:
        if actor.role != Role.admin:
            raise Forbidden("only administrators set system-wide rules")
        return None
    unit = db.session.execute(sa.select(Unit).where(Unit.code == code)).scalar_one_or_none()
    if unit is None:
        raise InvalidInput(f"no unit with code {code}", code="unknown_unit", field="scope_unit")
    if unit.level not in RULE_SCOPE_LEVELS:
        raise InvalidInput("rules are set per province, city or county", field="scope_unit")
    if actor.role != Role.admin and not (
            actor.role in (Role.platform, Role.supervisor) and unit.is_within(actor.unit)):
        raise Forbidden("you may set rules only for your own jurisdiction")
    return unit


def check_save_rule(actor: User, body: RuleBody) -> Checked:
    """Permission per scope; a lower scope may tighten the rules above it, never loosen."""
    scope = _rule_scope(actor, body.scope_unit)
    existing = db.session.execute(
        sa.select(SlaRule).where(SlaRule.code == body.code)).scalar_one_or_none()
    if existing is not None and existing.scope_unit_id != (scope.id if scope else None):
        # Changing another scope's rule needs rights over that scope too.
        old_scope = db.session.get(Unit, existing.scope_unit_id) if existing.scope_unit_id else None
        _rule_scope(actor, old_scope.code if old_scope else None)
    rule = rules_mod.Rule(
        code=body.code, name=body.name, clock=body.clock, amount=body.amount, unit=body.unit,
        scope_path=scope.path if scope else None, scope_unit_id=scope.id if scope else None,
        ticket_type=body.ticket_type, category_prefix=body.category_prefix or None,
        urgency=body.urgency, level=body.level, due_soon_percent=body.due_soon_percent,
        repeat_amount=body.repeat_amount, repeat_unit=body.repeat_unit,
        top_level=body.top_level, enabled=body.enabled,
    )
    try:
        rules_mod.validate(rule)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="invalid_rule") from None
    looser = rules_mod.looser_than_above(rule, rules_mod.current(), cal_mod.current(),
                                         datetime(2025, 3, 3, 1, 0, tzinfo=UTC))
    if looser is not None:
        raise InvalidInput(
            f"a lower level may tighten, not loosen: {looser.code} ({looser.name}) is stricter",
            code="rule_looser_than_above", rule=looser.code)
    return Checked("save_rule", actor, body, {"scope": scope, "existing": existing,
                                              "rule": rule})


def do_save_rule(checked: Checked, now: datetime | None = None) -> tuple[SlaRule,
                                                                             RecomputeReport]:
    now = now or utcnow()
    st = state()
    body: RuleBody = checked.body
    scope: Unit | None = checked.resolved["scope"]
    row: SlaRule | None = checked.resolved["existing"]
    values = {
        "name": body.name, "clock": body.clock, "scope_unit_id": scope.id if scope else None,
        "ticket_type": body.ticket_type, "category_prefix": body.category_prefix or None,
        "urgency": body.urgency, "level": body.level, "amount": body.amount, "unit": body.unit,
        "due_soon_percent": body.due_soon_percent, "repeat_amount": body.repeat_amount,
        "repeat_unit": body.repeat_unit, "top_level": body.top_level, "enabled": body.enabled,
    }
    was_enabled = row.enabled if row is not None else True
    if row is None:
        row = SlaRule(code=body.code, created_at=now, **values)
        db.session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    row.updated_at = now
    st.rules_token = _token()
    st.updated_at = now
    db.session.flush()
    append_event(RULES_STREAM, "rule.save", actor=checked.actor, at=now,
                 data={"code": body.code, **values, "scope_unit": body.scope_unit})
    cleared = [body.code] if was_enabled and not body.enabled else []
    return row, recompute_open(now, cleared_rules=cleared)


def check_set_rule_enabled(actor: User, code: str, enabled: bool) -> Checked:
    row = db.session.execute(sa.select(SlaRule).where(SlaRule.code == code)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no rule {code}", code="rule_not_found")
    scope = db.session.get(Unit, row.scope_unit_id) if row.scope_unit_id else None
    _rule_scope(actor, scope.code if scope else None)
    if row.enabled == enabled:
        raise Conflict(f"rule {code} is already {'enabled' if enabled else 'disabled'}",
                       code="no_change")
    return Checked("set_rule_enabled", actor, enabled, {"rule": row})


def do_set_rule_enabled(checked: Checked, now: datetime | None = None) -> RecomputeReport:
    """Disabling a rule clears its open escalations and stops its alerts; its clocks fall
    back to whatever rule now applies (or none)."""
    now = now or utcnow()
    st = state()
    row: SlaRule = checked.resolved["rule"]
    row.enabled = bool(checked.body)
    row.updated_at = now
    st.rules_token = _token()
    st.updated_at = now
    db.session.flush()
    append_event(RULES_STREAM, "rule.enable" if row.enabled else "rule.disable",
                 actor=checked.actor, at=now, data={"code": row.code})
    return recompute_open(now, cleared_rules=[] if row.enabled else [row.code])


# ---------------------------------------------------------------- calendar


def _admin(actor: User | None) -> None:
    if actor is not None and actor.role != Role.admin:
        raise Forbidden("only administrators edit the calendar")


def check_set_day(actor: User, body: CalendarDayBody) -> Checked:
    _admin(actor)
    return Checked("set_day", actor, body)


def do_set_day(checked: Checked, now: datetime | None = None) -> RecomputeReport:
    """Correct one day. Recorded as an exception only when it differs from the weekday
    rule; the year must already be entered (else enter the year)."""
    now = now or utcnow()
    body: CalendarDayBody = checked.body
    st = state()
    if db.session.get(CalendarYear, body.day.year) is None:
        raise Conflict(f"{body.day.year} has not been entered; enter the whole year first",
                       code="year_not_entered", year=body.day.year)
    existing = db.session.get(CalendarDay, body.day)
    plain = body.day.weekday() < 5
    if body.is_workday == plain:
        if existing is not None:
            db.session.delete(existing)
    elif existing is None:
        db.session.add(CalendarDay(day=body.day, is_workday=body.is_workday, name=body.name,
                                   source="admin", updated_at=now))
    else:
        existing.is_workday, existing.name = body.is_workday, body.name
        existing.source, existing.updated_at = "admin", now
    return _calendar_changed(st, checked.actor, "calendar.set_day", now, {
        "day": body.day.isoformat(), "is_workday": body.is_workday, "name": body.name})


def check_enter_year(actor: User | None, body: CalendarYearBody) -> Checked:
    _admin(actor)
    wrong = [d for d in [*body.holidays, *body.workdays] if d.year != body.year]
    if wrong:
        raise InvalidInput(f"days outside {body.year}: {wrong[0].isoformat()}", field="holidays")
    clash = set(body.holidays) & set(body.workdays)
    if clash:
        raise InvalidInput(f"{min(clash).isoformat()} is both a holiday and a working day")
    return Checked("enter_year", actor, body)


def do_enter_year(checked: Checked, now: datetime | None = None,
                  source: str = "admin") -> RecomputeReport:
    """Enter (or replace) a year: its provisional deadlines become final, recomputed."""
    now = now or utcnow()
    body: CalendarYearBody = checked.body
    st = state()
    db.session.execute(sa.delete(CalendarDay).where(
        CalendarDay.day >= date(body.year, 1, 1), CalendarDay.day <= date(body.year, 12, 31)))
    rows = [(d, False) for d in body.holidays if d.weekday() < 5]
    rows += [(d, True) for d in body.workdays if d.weekday() >= 5]
    if rows:
        db.session.execute(sa.insert(CalendarDay), [
            {"day": d, "is_workday": w, "name": body.names.get(d.isoformat()), "source": source,
             "updated_at": now} for d, w in sorted(rows)])
    year = db.session.get(CalendarYear, body.year)
    if year is None:
        db.session.add(CalendarYear(year=body.year, source=source, entered_at=now))
    else:
        year.source, year.entered_at = source, now
    return _calendar_changed(st, checked.actor, "calendar.enter_year", now, {
        "year": body.year, "holidays": [d.isoformat() for d in sorted(body.holidays)],
        "workdays": [d.isoformat() for d in sorted(body.workdays)]})


def do_sync_calendar(now: datetime | None = None) -> list[int]:
    """Import the years the installed package knows and the database lacks (a package
    upgrade brings next year's holidays). System action; returns the years added."""
    now = now or utcnow()
    known = set(db.session.execute(sa.select(CalendarYear.year)).scalars())
    st = state()
    missing = sorted(cal_mod.package_years() - known)
    if not missing:
        return []
    _import_package_years(missing, now)
    _calendar_changed(st, None, "calendar.sync", now, {"years": missing})
    return missing


def _calendar_changed(st: EscalationState, actor: User | None, kind: str, now: datetime,
                      data: dict[str, Any]) -> RecomputeReport:
    st.calendar_version += 1
    st.calendar_token = _token()
    st.updated_at = now
    db.session.flush()
    append_event(CALENDAR_STREAM, kind, actor=actor, at=now,
                 data={**data, "version": st.calendar_version})
    return recompute_open(now)


# ---------------------------------------------------------------- the board


def can_acknowledge(actor: User, item: Escalation) -> bool:
    """Steering staff of the unit the item reached, or above it."""
    if actor.role not in STEERING_ROLES:
        return False
    unit = db.session.get(Unit, item.unit_id)
    return unit is not None and unit.is_within(actor.unit)


def check_acknowledge(actor: User, item: Escalation) -> Checked:
    if not can_acknowledge(actor, item):
        raise Forbidden("only supervisors of the unit it reached may acknowledge it")
    if item.resolved_at is not None:
        raise Conflict("this escalation is no longer open", code="escalation_closed",
                       resolution=item.resolution)
    return Checked("acknowledge", actor, item)


def do_acknowledge(checked: Checked, note: str | None = None,
                   now: datetime | None = None) -> Escalation:
    """Idempotent: acknowledging twice keeps the first acknowledgement."""
    item: Escalation = checked.body
    now = now or utcnow()
    if item.acknowledged_at is None:
        item.acknowledged_at = now
        item.acknowledged_by_id = checked.actor.id if checked.actor else None
        append_event(f"escalation:{item.id}", "acknowledge", actor=checked.actor, at=now,
                     ticket_id=item.ticket_id, data={"escalation": item.id, "note": note})
    return item
