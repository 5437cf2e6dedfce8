"""What the supervisors' board and ``GET /api/v1/escalations`` read.

The caller passes the ids of the tickets the actor may see (``server.tickets.queries`` is
the one place that decides that); everything here is narrowed to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hierarchy.models import Unit, User
from server.core.db import db

from .models import CLOCK_LABELS, Clock, ClockKind, Escalation

TICKETS = sa.table("tickets", sa.column("id"), sa.column("number"), sa.column("title"),
                   sa.column("urgency"), sa.column("unit_id"), sa.column("grid_id"),
                   sa.column("status"), sa.column("extension_days_requested"))
GRIDS = sa.table("grids", sa.column("id"), sa.column("code"), sa.column("name"))


def township_of(path: str, units: dict[int, Unit]) -> Unit | None:
    """The township (4th level) on a unit's path, if the unit is at or below one."""
    ids = [int(p) for p in path.strip("/").split("/") if p]
    for unit_id in ids:
        unit = units.get(unit_id)
        if unit is not None and unit.level == "township":
            return unit
    return None


def units_on_paths(paths: list[str]) -> dict[int, Unit]:
    ids = {int(p) for path in paths for p in path.strip("/").split("/") if p}
    if not ids:
        return {}
    return {u.id: u for u in db.session.execute(
        sa.select(Unit).where(Unit.id.in_(ids))).scalars()}


def visible(column: Any, ticket_ids: sa.Select[Any]) -> sa.ColumnElement[bool]:
    """``column`` names a ticket in ``ticket_ids`` — as a correlated EXISTS, not ``IN``.

    The board reads a few hundred open clocks and escalations out of a jurisdiction that may
    hold 100,000 tickets: ``IN (subquery)`` makes SQLite build the whole set of visible ids
    first (~100 ms), where EXISTS checks each candidate row by primary key (~1 ms;
    ``bench/pages.py``). PostgreSQL plans both as a semi-join.
    """
    return ticket_ids.where(ticket_ids.selected_columns[0] == column).exists()


@dataclass(frozen=True)
class Filters:
    open_only: bool = True
    acknowledged: bool | None = None
    clock: str | None = None
    reached_unit: Unit | None = None
    township: Unit | None = None
    grid_code: str | None = None
    after_id: int | None = None


def escalations(ticket_ids: sa.Select[Any], filters: Filters, limit: int) -> list[dict[str, Any]]:
    """Board items (newest first) as dicts, with their ticket, units and grid."""
    reached = sa.orm.aliased(Unit)
    holder = sa.orm.aliased(Unit)
    acker = sa.orm.aliased(User)
    query = (
        sa.select(Escalation, TICKETS.c.number, TICKETS.c.title, TICKETS.c.urgency,
                  TICKETS.c.status, reached, holder, acker.username, GRIDS.c.code,
                  GRIDS.c.name, TICKETS.c.extension_days_requested)
        .join(TICKETS, TICKETS.c.id == Escalation.ticket_id)
        .join(reached, reached.id == Escalation.unit_id)
        .join(holder, holder.id == Escalation.from_unit_id)
        .outerjoin(acker, acker.id == Escalation.acknowledged_by_id)
        .outerjoin(GRIDS, GRIDS.c.id == TICKETS.c.grid_id)
        .where(visible(Escalation.ticket_id, ticket_ids))
    )
    if filters.open_only:
        query = query.where(Escalation.resolved_at.is_(None))
    if filters.acknowledged is not None:
        query = query.where(Escalation.acknowledged_at.is_not(None) if filters.acknowledged
                            else Escalation.acknowledged_at.is_(None))
    if filters.clock:
        query = query.where(Escalation.clock == filters.clock)
    if filters.reached_unit is not None:
        from hierarchy.scoping import in_subtree

        query = query.where(in_subtree(reached.path, filters.reached_unit.path))
    if filters.township is not None:
        from hierarchy.scoping import in_subtree

        query = query.where(in_subtree(holder.path, filters.township.path))
    if filters.grid_code:
        query = query.where(GRIDS.c.code == filters.grid_code)
    if filters.after_id is not None:
        query = query.where(Escalation.id < filters.after_id)
    rows = db.session.execute(query.order_by(Escalation.id.desc()).limit(limit)).all()
    units = units_on_paths([r[6].path for r in rows])
    out = []
    for (item, number, title, urgency, status, to_unit, from_unit, acked_by, gcode, gname,
         extension) in rows:
        town = township_of(from_unit.path, units)
        out.append({
            "id": item.id, "ticket": number, "title": title, "urgency": urgency,
            "status": status, "clock": item.clock,
            "clock_label": CLOCK_LABELS.get(ClockKind(item.clock), item.clock),
            "cycle": item.cycle, "rung": item.rung, "deadline": item.deadline,
            "level": item.level, "unit": to_unit.code, "unit_name": to_unit.name,
            "from_unit": from_unit.code, "from_unit_name": from_unit.name,
            "township": town.code if town else None,
            "township_name": town.name if town else None,
            "grid": gcode, "grid_name": gname,
            "escalated_at": item.escalated_at, "acknowledged": item.acknowledged_at is not None,
            "acknowledged_at": item.acknowledged_at, "acknowledged_by": acked_by,
            "urged_at": item.urged_at, "urge_count": item.urge_count,
            "resolved_at": item.resolved_at, "resolution": item.resolution,
            "rule": item.rule_code, "extension_requested": extension,
        })
    return out


def township_counts(ticket_ids: sa.Select[Any]) -> list[dict[str, Any]]:
    """Open escalations per township of the unit that held the ticket (repeat = rung ≥ 2)."""
    holder = sa.orm.aliased(Unit)
    rows = db.session.execute(
        sa.select(holder.path, Escalation.rung, Escalation.acknowledged_at.is_(None))
        .join(holder, holder.id == Escalation.from_unit_id)
        .where(visible(Escalation.ticket_id, ticket_ids), Escalation.resolved_at.is_(None))
    ).all()
    units = units_on_paths([r[0] for r in rows])
    counts: dict[str, dict[str, Any]] = {}
    for path, rung, unacked in rows:
        town = township_of(path, units)
        key = town.code if town else "-"
        entry = counts.setdefault(key, {"township": town.code if town else None,
                                        "name": town.name if town else "县级及以上",
                                        "open": 0, "unacknowledged": 0, "repeat": 0})
        entry["open"] += 1
        entry["unacknowledged"] += int(bool(unacked))
        entry["repeat"] += int(rung >= 2)
    return sorted(counts.values(), key=lambda e: (-e["open"], e["name"]))


def clock_lists(ticket_ids: sa.Select[Any], now: datetime, limit: int = 50,
                township: Unit | None = None) -> dict[str, list[dict[str, Any]]]:
    """Open clocks that are due soon and those overdue, soonest / oldest first, each with
    the township it is in (``township`` narrows to one)."""
    c = Clock
    base = (
        sa.select(c, TICKETS.c.number, TICKETS.c.title, TICKETS.c.urgency, Unit.name)
        .join(TICKETS, TICKETS.c.id == c.ticket_id)
        .join(Unit, Unit.id == c.unit_id)
        .where(visible(c.ticket_id, ticket_ids), c.stopped_at.is_(None), c.due_at.is_not(None),
               c.suspended_at.is_(None))
    )
    if township is not None:
        from hierarchy.scoping import in_subtree

        base = base.where(in_subtree(c.unit_path, township.path))
    soon = db.session.execute(
        base.where(c.due_soon_at <= now, c.due_at >= now).order_by(c.due_at).limit(limit)).all()
    late = db.session.execute(
        base.where(c.due_at < now).order_by(c.due_at).limit(limit)).all()
    units = units_on_paths([r[0].unit_path for r in (*soon, *late)])

    def as_dict(row: Any) -> dict[str, Any]:
        clock, number, title, urgency, unit_name = row
        town = township_of(clock.unit_path, units)
        return {"ticket": number, "title": title, "urgency": urgency, "clock": clock.kind,
                "clock_label": CLOCK_LABELS.get(ClockKind(clock.kind), clock.kind),
                "due_at": clock.due_at, "unit_name": unit_name,
                "provisional": clock.provisional, "step": clock.step,
                "township": town.code if town else None,
                "township_name": town.name if town else "县级及以上"}

    return {"due_soon": [as_dict(r) for r in soon], "overdue": [as_dict(r) for r in late]}


def township_summary(ticket_ids: sa.Select[Any], now: datetime) -> list[dict[str, Any]]:
    """Per township: open clocks due soon, overdue, and open escalations (unacknowledged,
    repeated) — full counts, not the board lists' first fifty. Four grouped statements:
    clocks are grouped by the path of the unit holding them, so the townships are read off
    a few hundred paths, never per ticket."""
    c = Clock
    counted = (sa.select(c.unit_path,
                         sa.func.count().filter(c.due_soon_at <= now, c.due_at >= now),
                         sa.func.count().filter(c.due_at < now))
               .where(visible(c.ticket_id, ticket_ids), c.stopped_at.is_(None),
                      c.due_at.is_not(None), c.suspended_at.is_(None))
               .group_by(c.unit_path))
    # Two range reads on the open-clock indexes (migration 0008) rather than one OR, which
    # SQLite answers by scanning every open clock: clocks with a reminder point reached, and
    # the few without one (due-soon reminders switched off) that are overdue.
    rows = [*db.session.execute(counted.where(c.due_soon_at <= now)).all(),
            *db.session.execute(counted.where(c.due_soon_at.is_(None), c.due_at < now)).all()]
    units = units_on_paths([r[0] for r in rows])
    out: dict[str, dict[str, Any]] = {}

    def entry(town: Unit | None) -> dict[str, Any]:
        key = town.code if town else "-"
        return out.setdefault(key, {"township": town.code if town else None,
                                    "name": town.name if town else "县级及以上",
                                    "due_soon": 0, "overdue": 0, "open": 0,
                                    "unacknowledged": 0, "repeat": 0})

    for path, soon, late in rows:
        e = entry(township_of(path, units))
        e["due_soon"] += soon
        e["overdue"] += late
    for esc in township_counts(ticket_ids):
        e = out.setdefault(esc["township"] or "-", {**esc, "due_soon": 0, "overdue": 0})
        e.update(open=esc["open"], unacknowledged=esc["unacknowledged"], repeat=esc["repeat"])
    return sorted(out.values(), key=lambda e: (-e["overdue"], -e["open"], -e["due_soon"],
                                               e["name"]))


def get_item(item_id: int, ticket_ids: sa.Select[Any]) -> Escalation | None:
    return db.session.execute(
        sa.select(Escalation).where(Escalation.id == item_id,
                                    visible(Escalation.ticket_id, ticket_ids))
    ).scalar_one_or_none()
