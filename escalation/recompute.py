"""Recompute open clocks after a rule or calendar change — set-based, not row by row.

Open clocks are read in keyset batches (only the columns a rule looks at: each clock carries
its own copy of the ticket's facts), their deadlines computed in memory against the cached
calendar, and the changed ones written back with one executemany ``UPDATE`` per batch; the
tickets' displayed deadlines follow the same way. No ORM object is loaded.

Stopped clocks — closed tickets — are never touched: they keep the deadline and the calendar
version they were judged by, so last year's rankings replay the same tomorrow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from server.core.bulk import bulk_update
from server.core.db import BigID, UTCDateTime, db

from . import calendar as cal_mod
from . import rules as rules_mod
from .clocks import first_fire, reminded
from .models import Clock, ClockKind, Escalation
from .rules import Facts

TICKETS = sa.Table("tickets", sa.MetaData(), sa.Column("id", BigID, primary_key=True),
                   sa.Column("response_due", UTCDateTime), sa.Column("handling_due", UTCDateTime),
                   sa.Column("deadline_provisional", sa.Boolean))
_C = Clock.__table__.c
#: clocks column → (value key, type) written back by the recomputation.
CLOCK_SETS: dict[str, tuple[str, Any]] = {
    "due_at": ("due", _C.due_at.type), "due_soon_at": ("due_soon", _C.due_soon_at.type),
    "rule_code": ("rule", _C.rule_code.type), "provisional": ("prov", _C.provisional.type),
    "calendar_version": ("cal", _C.calendar_version.type), "step": ("step", _C.step.type),
    "next_fire_at": ("next_fire", _C.next_fire_at.type),
}
COLUMNS = ("id", "ticket_id", "kind", "ticket_type", "category_code", "urgency", "level",
           "scope_path", "started_at", "due_at", "due_soon_at", "extended_days",
           "suspended_seconds", "suspended_at", "step", "rule_code", "provisional",
           "calendar_version", "next_fire_at")


@dataclass
class RecomputeReport:
    examined: int = 0
    changed: int = 0
    tickets: int = 0
    escalations_cleared: int = 0


def _new_state(row: Any, rules: rules_mod.RuleSet, calendar: cal_mod.WorkCalendar,
               now: datetime) -> dict[str, Any] | None:
    facts = Facts(row.ticket_type, row.category_code, row.urgency, row.level, row.scope_path)
    resolved = rules.resolve(row.kind, facts, row.started_at, calendar)
    rule = resolved.rule
    due, provisional = resolved.due_at, resolved.provisional
    if due is not None and row.extended_days:
        due, prov = calendar.add_working_days(due, row.extended_days)
        provisional |= prov
    if due is not None and row.suspended_seconds:
        due += timedelta(seconds=row.suspended_seconds)
    if (due == row.due_at and resolved.code == row.rule_code and provisional == row.provisional
            and row.calendar_version == calendar.version):
        return None
    due_soon = rule.due_soon_at(row.started_at, due) if rule and due else None
    # Another rule now governs, or the deadline moved beyond now: the ladder starts again
    # for the new deadline (the fired table still stops any rung firing twice for one
    # deadline). Otherwise rungs already fired stay fired.
    restart = resolved.code != row.rule_code or (
        due is not None and due != row.due_at and now < due
        and reminded(row.step, row.due_soon_at, now))
    step = row.step
    if restart:
        step = 0 if due_soon is not None and now < due_soon else 1
    elif step == 0 and due_soon is None:
        step = 1
    reset = restart and row.step >= 2
    if rule is None or due is None or row.suspended_at is not None:
        next_fire = None
    else:
        step, next_fire = first_fire(step, due_soon, due, rule, calendar, now)
    return {
        "cid": row.id, "ticket_id": row.ticket_id, "kind": row.kind, "due": due,
        "due_soon": due_soon, "rule": resolved.code, "prov": provisional,
        "cal": calendar.version, "step": step, "next_fire": next_fire, "reset": reset,
        "prov_changed": provisional != row.provisional,
    }


def recompute_open(now: datetime, *, batch: int = 5000,
                   cleared_rules: Iterable[str] = ()) -> RecomputeReport:
    """Recompute every open clock against the rules and calendar in force; in the caller's
    transaction. ``cleared_rules``: rules just disabled, whose open escalations are cleared."""
    rules_mod.forget_cached()
    cal_mod.forget_cached()
    rules, calendar = rules_mod.current(), cal_mod.current()
    report = RecomputeReport()
    table = Clock.__table__
    c = table.c
    cleared = list(cleared_rules)
    if cleared:
        result = db.session.execute(
            sa.update(Escalation)
            .where(Escalation.rule_code.in_(cleared), Escalation.resolved_at.is_(None))
            .values(resolved_at=now, resolution="rule_disabled")
        )
        report.escalations_cleared += result.rowcount or 0
    last_id = 0
    while True:
        rows = db.session.execute(
            sa.select(*(c[name] for name in COLUMNS))
            .where(c.stopped_at.is_(None), c.id > last_id)
            .order_by(c.id).limit(batch)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        report.examined += len(rows)
        changes = [s for s in (_new_state(r, rules, calendar, now) for r in rows) if s]
        if not changes:
            continue
        report.changed += len(changes)
        bulk_update(table, "id", "cid", changes, CLOCK_SETS)
        reset_ids = [s["cid"] for s in changes if s["reset"]]
        for start in range(0, len(reset_ids), 1000):
            result = db.session.execute(
                sa.update(Escalation)
                .where(Escalation.clock_id.in_(reset_ids[start:start + 1000]),
                       Escalation.resolved_at.is_(None))
                .values(resolved_at=now, resolution="rescheduled"))
            report.escalations_cleared += result.rowcount or 0
        report.tickets += _sync_tickets(changes)
    return report


def _sync_tickets(changes: list[dict[str, Any]]) -> int:
    """The tickets' displayed deadlines follow their open sign and reply clocks."""
    due_type = Clock.__table__.c.due_at.type
    bulk_update(TICKETS, "id", "ticket_id",
                [s for s in changes if s["kind"] == ClockKind.sign],
                {"response_due": ("due", due_type)})
    bulk_update(TICKETS, "id", "ticket_id",
                [s for s in changes if s["kind"] == ClockKind.reply],
                {"handling_due": ("due", due_type)})
    t = TICKETS.c
    ids = sorted({s["ticket_id"] for s in changes if s["prov_changed"]})
    clocks = Clock.__table__.c
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        any_provisional = (
            sa.select(sa.func.count()).select_from(Clock.__table__)
            .where(clocks.ticket_id == t.id, clocks.stopped_at.is_(None),
                   clocks.provisional.is_(True))
            .scalar_subquery() > 0
        )
        db.session.execute(
            sa.update(TICKETS).where(t.id.in_(chunk))
            .values(deadline_provisional=any_provisional))
    return len({s["ticket_id"] for s in changes})
