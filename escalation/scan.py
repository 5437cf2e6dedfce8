"""The deadline scan: what has become due since the last one.

The scan reads only clocks whose ``next_fire_at`` has come — a range of the partial index
``ix_clocks_next_fire`` — so its cost follows the number of tickets becoming due, not the
number open. Due-soon reminders carry no ticket event and are fired in bulk, set-based, in
one transaction per batch; overdue rungs are events on their tickets and are listed here for
the job to fire one ticket at a time under the ticket's row lock.

On PostgreSQL the batch's clocks are claimed ``FOR UPDATE SKIP LOCKED`` so two workers (or
two schedulers) split the work; on SQLite the single writer lock serialises them. Either way
the ``fired`` table's unique key is the last word.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from hierarchy.models import User
from server.core.db import UTCDateTime, db

from . import calendar as cal_mod
from . import notify
from .ladder import fired_insert, fired_key, insert_fired
from .models import Clock, Fired

#: Escalation may not import the ticket model; these are the columns it reads.
TICKETS = sa.table("tickets", sa.column("id"), sa.column("number"), sa.column("title"))


def _due_clause(now: datetime) -> sa.ColumnElement[bool]:
    # Strictly after: at the deadline itself a ticket is not late yet.
    return sa.and_(Clock.stopped_at.is_(None), Clock.next_fire_at.is_not(None),
                   Clock.next_fire_at < now)


def fire_due_soon(now: datetime, limit: int = 5000) -> int:
    """Fire up to ``limit`` due-soon reminders in the caller's transaction, set-based; returns
    how many clocks were handled (fired now, or found already fired by someone else).

    Claim the clocks and move them to the next rung (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL), insert their ``fired`` rows (``ON CONFLICT DO NOTHING RETURNING`` says which
    are new), and insert the in-app notices for the new ones straight from the clocks (to the
    assignee, or the holding unit's staff). On PostgreSQL the three are one statement (data-
    modifying CTEs), so the claimed rows never travel to Python and back; on SQLite, which has
    no such CTEs, they are three.
    """
    if db.engine.dialect.name == "postgresql":
        return _fire_due_soon_pg(now, limit)
    table = Clock.__table__
    c = table.c
    rows = db.session.execute(
        sa.update(table).where(c.id.in_(_due_soon(now, limit).scalar_subquery()), c.step == 0)
        .values(step=1, next_fire_at=c.due_at)
        .returning(c.id, c.ticket_id, c.kind, c.cycle, c.due_at, c.assignee_id)
    ).all()
    if not rows:
        return 0
    fired = insert_fired([(r.ticket_id, r.kind, r.cycle, 0, r.due_at) for r in rows], now)
    new = [r for r in rows if fired_key(r.ticket_id, r.kind, r.cycle, 0, r.due_at) in fired]
    if new:
        db.session.execute(_due_soon_notices(
            table, now, units=any(r.assignee_id is None for r in new),
            where=c.id.in_([r.id for r in new])))
    return len(rows)


def _due_soon(now: datetime, limit: int) -> sa.Select[tuple[int]]:
    """The ids of up to ``limit`` clocks whose due-soon rung has come, oldest first — a range
    of ``ix_clocks_next_fire``."""
    c = Clock.__table__.c
    return (sa.select(c.id).where(_due_clause(now), c.step == 0, c.due_at >= now)
            .order_by(c.next_fire_at).limit(limit))


def _fire_due_soon_pg(now: datetime, limit: int) -> int:
    """:func:`fire_due_soon` on PostgreSQL, one statement::

        WITH due AS (SELECT … FOR UPDATE SKIP LOCKED),
             claimed AS (UPDATE clocks … FROM due RETURNING …),
             new AS (INSERT INTO fired … FROM claimed ON CONFLICT DO NOTHING RETURNING …),
             notices AS (INSERT INTO notifications … FROM claimed JOIN new … GROUP BY person)
        SELECT count(*) FROM claimed

    All parts see one snapshot and commit or roll back together; a reminder is noticed only
    when its ``fired`` row is new, exactly as in the three-statement form. An index probe
    goes first, so a scan with nothing due runs one small statement, not this one.
    """
    if db.session.execute(_due_soon(now, 1)).first() is None:
        # Most scans find nothing due: one index probe, and the planner is spared the
        # four-part statement below (a few milliseconds to plan, every minute).
        return 0
    table = Clock.__table__
    c = table.c
    due = _due_soon(now, limit).with_for_update(skip_locked=True).cte("due")
    claimed = (
        sa.update(table).where(c.id == due.c.id, c.step == 0)
        .values(step=1, next_fire_at=c.due_at)
        .returning(c.ticket_id, c.kind, c.cycle, c.due_at, c.assignee_id, c.unit_id, c.urgency)
        .cte("claimed")
    )
    f = Fired.__table__.c
    new = (
        fired_insert().from_select(
            ["ticket_id", "clock", "cycle", "rung", "deadline", "fired_at"],
            sa.select(claimed.c.ticket_id, claimed.c.kind, claimed.c.cycle, sa.literal(0),
                      claimed.c.due_at, sa.literal(now, UTCDateTime())))
        .returning(f.ticket_id, f.clock, f.cycle, f.deadline)
        .cte("new")
    )
    fresh = (
        sa.select(claimed.c.ticket_id, claimed.c.assignee_id, claimed.c.unit_id,
                  claimed.c.urgency)
        .join(new, sa.and_(new.c.ticket_id == claimed.c.ticket_id,
                           new.c.clock == claimed.c.kind, new.c.cycle == claimed.c.cycle,
                           new.c.deadline == claimed.c.due_at))
        .subquery()
    )
    notices = _due_soon_notices(fresh, now, units=True).cte("notices")
    handled = sa.select(sa.func.count()).select_from(claimed).add_cte(notices)
    return int(db.session.execute(handled).scalar_one())


def _due_soon_notices(clocks: sa.FromClause, now: datetime, units: bool = True,
                      where: sa.ColumnElement[bool] | None = None) -> sa.Insert:
    """One in-app notice per person (and urgency) for these clocks — rows of ``clocks`` (the
    table, or the claimed rows on PostgreSQL) that match ``where``, with their
    ``ticket_id``, ``assignee_id``, ``unit_id`` and ``urgency`` — as one ``INSERT … SELECT``
    grouped by person: twenty tickets due soon make one notice listing twenty numbers.
    ``units``: some clocks are held by a unit, not a person (else that half is left out)."""
    c = clocks.c
    chosen = sa.true() if where is None else where
    t = TICKETS.c
    users = User.__table__.c
    postgres = db.engine.dialect.name == "postgresql"
    json = sa.func.jsonb_build_object if postgres else sa.func.json_object
    agg = sa.func.jsonb_agg if postgres else sa.func.json_group_array
    urgent = (c.urgency == "emergency").label("urgent")
    to_people = (
        sa.select(c.assignee_id.label("uid"), c.ticket_id.label("tid"),
                  t.number.label("number"), urgent)
        .join(TICKETS, t.id == c.ticket_id)
        .where(chosen, c.assignee_id.is_not(None)))
    to_units = (
        sa.select(users.id.label("uid"), c.ticket_id.label("tid"), t.number.label("number"),
                  urgent)
        .join(TICKETS, t.id == c.ticket_id)
        .join(User.__table__, sa.and_(
            users.unit_id == c.unit_id, users.role.in_([str(r) for r in notify.HANDLING]),
            users.active.is_(True), users.is_system.is_(False)))
        .where(chosen, c.assignee_id.is_(None)))
    pairs = (sa.union_all(to_people, to_units) if units else to_people).subquery()
    count = sa.func.count()
    single = count == 1
    held = notify.deliver_after(now, False, cal_mod.current())
    at = sa.literal(now, UTCDateTime())
    grouped = (
        sa.select(
            pairs.c.uid, sa.literal("due_soon"),
            sa.case((single, sa.func.min(pairs.c.tid)), else_=sa.null()),
            sa.case((single, sa.literal("工单") + sa.func.min(pairs.c.number)
                     + sa.literal("即将超时")),
                    else_=sa.literal("您有") + sa.cast(count, sa.String)
                    + sa.literal("件工单即将超时")),
            sa.literal("请在时限前签收或办理"),
            json("count", count, "numbers", agg(pairs.c.number),
                 "number", sa.case((single, sa.func.min(pairs.c.number)), else_=sa.null())),
            pairs.c.urgent, at,
            sa.case((pairs.c.urgent, at), else_=sa.literal(held, UTCDateTime())),
        )
        .group_by(pairs.c.uid, pairs.c.urgent)
    )
    names = ["user_id", "kind", "ticket_id", "title", "body", "data", "urgent", "created_at",
             "deliver_after"]
    return sa.insert(notify.Notification.__table__).from_select(names, grouped)


def due_rungs(now: datetime, limit: int = 500) -> list[tuple[int, int, str]]:
    """Clocks with an overdue rung to fire: [(clock id, ticket id, ticket number)], oldest
    first. Only listed; the job locks each ticket before it fires anything."""
    c = Clock.__table__.c
    rows = db.session.execute(
        sa.select(c.id, c.ticket_id, TICKETS.c.number)
        .join(TICKETS, TICKETS.c.id == c.ticket_id)
        .where(_due_clause(now), sa.or_(c.step > 0, c.due_at < now))
        .order_by(c.next_fire_at)
        .limit(limit)
    ).all()
    return [(r.id, r.ticket_id, r.number) for r in rows]
