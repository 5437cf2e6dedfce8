"""The escalation ladder, one rung of one clock at a time.

Rung 0 is the due-soon reminder to the holder (sent in bulk by :mod:`escalation.scan`).
Rung 1 is the deadline: the breach is recorded, the holder told, and the ticket raised to the
unit above — for a ticket held by a person, that person's own unit; else the holding unit's
parent. Each further rung, one "repeat" period later, raises it one unit higher, up to the
county (or the city where the rule says so). Each rung ≥ 1 is an event on the ticket — so it
runs under the ticket row lock, as ``server.tickets.operations.check_escalate`` /
``do_escalate`` — and an item on the board of the unit it reached.

Exactly once: :func:`claim` inserts the rung's row into ``fired`` (unique on ticket, clock,
cycle, rung and deadline) in the same transaction as the event and the board item; a second
worker, a second scheduler or a re-run after a crash finds the row and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hierarchy.models import Unit
from server.core.bulk import bulk_insert, ids_in, recordset, rows_document
from server.core.db import UTCDateTime, db

from . import calendar as cal_mod
from . import notify
from . import rules as rules_mod
from .models import CLOCK_LABELS, Clock, ClockKind, Escalation, Fired
from .rules import LEVELS, Rule


@dataclass(frozen=True)
class Target:
    unit_id: int
    code: str
    name: str
    level: str


@dataclass(frozen=True)
class Plan:
    """One rung about to fire: what the ticket event and the board item will say."""

    clock_id: int
    ticket_id: int
    number: str
    kind: str
    cycle: int
    rung: int
    deadline: datetime
    rule_code: str | None
    holder_unit_id: int
    holder_assignee_id: int | None
    urgent: bool
    target: Target | None
    next_at: datetime | None
    now: datetime

    def event_data(self) -> dict[str, Any]:
        return {
            "clock": self.kind, "cycle": self.cycle, "rung": self.rung,
            "deadline": self.deadline.isoformat(),
            "overdue_minutes": max(0, int((self.now - self.deadline).total_seconds() // 60)),
            "to": self.target.code if self.target else None,
            "level": self.target.level if self.target else None,
            "rule": self.rule_code,
            "next_at": self.next_at.isoformat() if self.next_at else None,
        }


def _chain_ids(clock: Clock) -> list[int]:
    """The unit ids a clock may climb through, nearest first."""
    ids = [int(p) for p in clock.unit_path.strip("/").split("/") if p]
    chain = list(reversed(ids if clock.assignee_id is not None else ids[:-1]))
    return chain or ids[-1:]  # the root holds it: its own board


def _ladder(chain: list[int], units: dict[int, Unit], rule: Rule) -> list[Target]:
    if rule.top_level is None:
        return []
    top = LEVELS.index(rule.top_level)
    ladder: list[Target] = []
    for unit_id in chain:
        unit = units.get(unit_id)
        if unit is None:
            continue
        depth = LEVELS.index(unit.level) if unit.level in LEVELS else 0
        if ladder and depth < top:
            break
        ladder.append(Target(unit.id, unit.code, unit.name, str(unit.level)))
        if depth <= top:
            break
    return ladder


def ladder_for(clock: Clock, rule: Rule) -> list[Target]:
    """The units a clock climbs to, in order, up to the rule's top level."""
    chain = _chain_ids(clock)
    units = {u.id: u for u in db.session.execute(
        sa.select(Unit).where(Unit.id.in_(chain))).scalars()}
    return _ladder(chain, units, rule)


def plan(ticket_id: int, number: str, clock_id: int, now: datetime) -> Plan | None:
    """The rung of this clock due at ``now``, or None (stopped, moved, or not yet due).

    The caller holds the ticket row lock, which every writer of the ticket's clocks takes.
    """
    return plan_many([(ticket_id, number, clock_id)], now)[0]


#: What planning a rung reads of a clock: plain columns, no ORM object (a group of 100
#: clocks loaded as objects cost more than the statement that read them).
PLAN_COLUMNS = (Clock.id, Clock.ticket_id, Clock.cycle, Clock.kind, Clock.rule_code,
                Clock.unit_id, Clock.unit_path, Clock.assignee_id, Clock.urgency, Clock.due_at,
                Clock.stopped_at, Clock.next_fire_at, Clock.step)


def plan_many(items: list[tuple[int, str, int]], now: datetime) -> list[Plan | None]:
    """:func:`plan` for many (ticket id, number, clock id) at once, in three statements
    whatever their number (clocks, the units of their ladders; rules and calendar cached).
    The caller holds all these tickets' row locks."""
    wanted = {clock_id: ticket_id for ticket_id, _number, clock_id in items}
    clocks = {c.id: c for c in db.session.execute(
        sa.select(*PLAN_COLUMNS).where(ids_in(Clock.id, list(wanted))))
        if wanted.get(c.id) == c.ticket_id}
    rules = rules_mod.current()
    calendar = cal_mod.current()
    chains = {cid: _chain_ids(c) for cid, c in clocks.items()}
    unit_ids = {u for chain in chains.values() for u in chain}
    units = {u.id: u for u in db.session.execute(
        sa.select(Unit).where(Unit.id.in_(list(unit_ids)))).scalars()} if unit_ids else {}
    plans: list[Plan | None] = []
    silenced: list[int] = []  # clocks whose alerts stop: no rule, or the ladder's top reached
    for ticket_id, number, clock_id in items:
        clock = clocks.get(clock_id)
        if clock is None or clock.stopped_at is not None or clock.next_fire_at is None:
            plans.append(None)
            continue
        if clock.next_fire_at >= now or clock.due_at is None:
            plans.append(None)
            continue
        rule = rules.by_code(clock.rule_code)
        if rule is None or not rule.enabled:
            silenced.append(clock.id)  # the rule went away: its alerts stop
            plans.append(None)
            continue
        rung = clock.step
        if rung == 0:
            if clock.due_at >= now:
                plans.append(None)  # a due-soon reminder: sent in bulk by the scan
                continue
            rung = 1  # the deadline passed before the reminder went: straight to overdue
        ladder = _ladder(chains[clock_id], units, rule)
        if rung > 1 and rung - 1 >= len(ladder):
            silenced.append(clock.id)  # top of the ladder reached
            plans.append(None)
            continue
        target = ladder[rung - 1] if rung - 1 < len(ladder) else None
        next_at = rule.rung_at(clock.due_at, rung + 1, calendar) if rung < len(ladder) else None
        plans.append(Plan(
            clock_id=clock.id, ticket_id=ticket_id, number=number, kind=clock.kind,
            cycle=clock.cycle, rung=rung, deadline=clock.due_at, rule_code=clock.rule_code,
            holder_unit_id=clock.unit_id, holder_assignee_id=clock.assignee_id,
            urgent=clock.urgency == "emergency", target=target, next_at=next_at, now=now,
        ))
    if silenced:
        db.session.execute(sa.update(Clock.__table__).where(ids_in(Clock.id, silenced))
                           .values(next_fire_at=None))
        _expire_clocks(silenced)
    return plans


def _expire_clocks(ids: list[int]) -> None:
    """Copies of these clocks already in the session are expired: they were written with
    plain UPDATEs, so nothing may read (or flush) their old rung afterwards."""
    wanted = set(ids)
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Clock) and obj.id in wanted:
            db.session.expire(obj)


def fired_insert() -> Any:
    dialect = db.engine.dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Fired.__table__)
    return insert.on_conflict_do_nothing(
        index_elements=["ticket_id", "clock", "cycle", "rung", "deadline"])


def fired_key(ticket_id: int, kind: str, cycle: int, rung: int,
               deadline: datetime) -> tuple[int, str, int, int, str]:
    return ticket_id, kind, cycle, rung, deadline.isoformat(timespec="microseconds")


#: The fields of a ``fired`` row as :func:`insert_fired` passes them (ticket, clock, cycle,
#: rung, deadline).
_FIRED = ("t", "k", "c", "r", "d")


def insert_fired(rows: list[tuple[int, str, int, int, datetime]],
                 now: datetime) -> set[tuple[int, str, int, int, str]]:
    """Insert ``fired`` rows (ticket id, clock, cycle, rung, deadline) in one statement,
    ``ON CONFLICT DO NOTHING``; returns the keys (:func:`fired_key`) that were new — the
    rungs this transaction fires. On PostgreSQL the rows travel as one JSON document
    (``server.core.bulk``), not as thousands of parameters (whose parsing cost more than
    the insert)."""
    if not rows:
        return set()
    f = Fired.__table__.c
    if db.engine.dialect.name == "postgresql":
        types = [sa.BigInteger(), sa.String(), sa.Integer(), sa.Integer(), UTCDateTime()]
        inserted = db.session.execute(sa.text(
            "INSERT INTO fired (ticket_id, clock, cycle, rung, deadline, fired_at) "
            f"SELECT v.t, v.k, v.c, v.r, v.d, :now FROM {recordset(_FIRED, types)} "
            "ON CONFLICT DO NOTHING RETURNING ticket_id, clock, cycle, rung, deadline"),
            {"rows": rows_document([dict(zip(_FIRED, row, strict=True)) for row in rows],
                                   _FIRED, types), "now": now})
    else:
        inserted = db.session.execute(  # executemany: batched within SQLite's limits
            fired_insert().returning(f.ticket_id, f.clock, f.cycle, f.rung, f.deadline),
            [{"ticket_id": t, "clock": k, "cycle": c, "rung": r, "deadline": d,
              "fired_at": now} for t, k, c, r, d in rows])
    return {fired_key(*row) for row in inserted}


def claim(p: Plan) -> bool:
    """Record that this rung fired; False when it already had (then nothing must be sent)."""
    return claim_many([p])[0]


def claim_many(plans: list[Plan]) -> list[bool]:
    """:func:`claim` for many rungs in one ``INSERT … ON CONFLICT DO NOTHING RETURNING``."""
    if not plans:
        return []
    new = insert_fired([(p.ticket_id, p.kind, p.cycle, p.rung, p.deadline) for p in plans],
                       plans[0].now)
    return [fired_key(p.ticket_id, p.kind, p.cycle, p.rung, p.deadline) in new
            for p in plans]


def advance(p: Plan) -> None:
    """Move the clock past the rung (whether or not this worker was the one to fire it)."""
    advance_many([p])


def advance_many(plans: list[Plan]) -> None:
    """:func:`advance` for many: one UPDATE for all of them (from arrays on PostgreSQL, an
    executemany by primary key on SQLite) — the plans carry what changes, so nothing is
    loaded again. A copy of these clocks already in the session is expired, so nothing reads
    the old rung afterwards."""
    if not plans:
        return
    db.session.flush()  # pending ORM changes first: expiring below must not drop them
    if db.engine.dialect.name == "postgresql":  # one statement, one JSON document
        names = ("i", "s", "n", "d")
        types = [sa.BigInteger(), sa.Integer(), UTCDateTime(), UTCDateTime()]
        db.session.execute(sa.text(
            "UPDATE clocks SET step = v.s, next_fire_at = v.n, "
            "breached_at = COALESCE(clocks.breached_at, v.d) "
            f"FROM {recordset(names, types)} WHERE clocks.id = v.i"),
            {"rows": rows_document([{"i": p.clock_id, "s": p.rung + 1, "n": p.next_at,
                                     "d": p.deadline} for p in plans], names, types)})
    else:
        c = Clock.__table__.c
        db.session.execute(
            sa.update(Clock.__table__).where(c.id == sa.bindparam("b_id"))
            .values(step=sa.bindparam("b_step"),
                    next_fire_at=sa.bindparam("b_next", type_=UTCDateTime()),
                    breached_at=sa.func.coalesce(
                        c.breached_at, sa.bindparam("b_deadline", type_=UTCDateTime()))),
            [{"b_id": p.clock_id, "b_step": p.rung + 1, "b_next": p.next_at,
              "b_deadline": p.deadline} for p in plans])
    _expire_clocks([p.clock_id for p in plans])


def apply(p: Plan, event_id: int | None) -> int | None:
    """The rung's effects, after :func:`claim` succeeded and the ticket event was appended;
    the id of the board item it made (None when the rung reached no unit)."""
    return apply_many([(p, event_id)])[0]


def apply_many(fired: list[tuple[Plan, int | None]]) -> list[int | None]:
    """:func:`apply` for many rungs: clocks moved on, the holders told it is overdue, the
    previous rung's board items closed, the new board items and their supervisors' notices —
    a handful of statements for the lot (the board items in one ``INSERT … RETURNING``, the
    notices in one insert)."""
    if not fired:
        return []
    calendar = cal_mod.current()
    advance_many([p for p, _ in fired])
    staff = notify.staff_of(
        u for p, _ in fired
        for u in (p.holder_unit_id if p.holder_assignee_id is None else None,
                  p.target.unit_id if p.target else None) if u is not None)
    notices: list[dict[str, Any]] = []
    for p, _ in fired:
        if p.rung == 1:
            label = CLOCK_LABELS.get(ClockKind(p.kind), p.kind)
            holders = ([p.holder_assignee_id] if p.holder_assignee_id is not None
                       else staff.get(p.holder_unit_id, []))
            notices += notify.notice_rows(
                holders, kind="overdue", at=p.now, ticket_id=p.ticket_id,
                title=f"工单{p.number}{label}已超时", body="请尽快办理。", data=_data(p),
                urgent=p.urgent, calendar=calendar)
    further = [p.clock_id for p, _ in fired if p.target is not None and p.rung > 1]
    if further:
        db.session.execute(
            sa.update(Escalation)
            .where(ids_in(Escalation.clock_id, further), Escalation.resolved_at.is_(None))
            .values(resolved_at=fired[0][0].now, resolution="escalated_further")
        )
    reaching = [(p, p.target, event_id) for p, event_id in fired if p.target is not None]
    # One board item per clock in a group (its rungs are distinct clocks): matched back by
    # clock id, whatever order the ids come back in.
    made = {row.clock_id: row.id for row in bulk_insert(Escalation.__table__, [
        {"ticket_id": p.ticket_id, "clock_id": p.clock_id, "clock": p.kind, "cycle": p.cycle,
         "rung": p.rung, "deadline": p.deadline, "rule_code": p.rule_code,
         "unit_id": target.unit_id, "level": target.level, "from_unit_id": p.holder_unit_id,
         "event_id": event_id, "escalated_at": p.now, "urge_count": 0}
        for p, target, event_id in reaching], returning=("id", "clock_id"))}
    for p, target, _ in reaching:
        item_id = made[p.clock_id]
        label = CLOCK_LABELS.get(ClockKind(p.kind), p.kind)
        notices += notify.notice_rows(
            staff.get(target.unit_id, []), kind="escalated", at=p.now, ticket_id=p.ticket_id,
            escalation_id=item_id, title=f"工单{p.number}{label}超时，已升级至{target.name}",
            body="请督办。", data={**_data(p), "escalation": item_id, "to": target.code},
            urgent=p.urgent, calendar=calendar)
    notify.insert_notices(notices)
    return [made.get(p.clock_id) for p, _ in fired]


def _data(p: Plan) -> dict[str, Any]:
    return {"number": p.number, "clock": p.kind, "rung": p.rung,
            "deadline": p.deadline.isoformat()}
