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

from server.core.db import db

from . import calendar as cal_mod
from . import notify
from .ladder import fired_insert
from .models import CLOCK_LABELS, Clock, ClockKind

#: Escalation may not import the ticket model; these are the columns it reads.
TICKETS = sa.table("tickets", sa.column("id"), sa.column("number"), sa.column("title"))


def _due_clause(now: datetime) -> sa.ColumnElement[bool]:
    # Strictly after: at the deadline itself a ticket is not late yet.
    return sa.and_(Clock.stopped_at.is_(None), Clock.next_fire_at.is_not(None),
                   Clock.next_fire_at < now)


def fire_due_soon(now: datetime, limit: int = 2000) -> int:
    """Fire up to ``limit`` due-soon reminders in the caller's transaction; returns how many
    clocks were handled (fired now, or found already fired by someone else)."""
    c = Clock.__table__.c
    query = (
        sa.select(c.id, c.ticket_id, c.kind, c.cycle, c.due_at, c.unit_id, c.assignee_id,
                  c.urgency, TICKETS.c.number)
        .join(TICKETS, TICKETS.c.id == c.ticket_id)
        .where(_due_clause(now), c.step == 0, c.due_at >= now)
        .order_by(c.next_fire_at)
        .limit(limit)
    )
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(of=Clock.__table__, skip_locked=True)
    rows = db.session.execute(query).all()
    if not rows:
        return 0
    fired = {
        (r.ticket_id, r.clock, r.cycle)
        for r in db.session.execute(
            fired_insert().returning(sa.literal_column("ticket_id"), sa.literal_column("clock"),
                                     sa.literal_column("cycle")),
            [{"ticket_id": r.ticket_id, "clock": r.kind, "cycle": r.cycle, "rung": 0,
              "deadline": r.due_at, "fired_at": now} for r in rows],
        )
    }
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 1000):
        db.session.execute(
            sa.update(Clock.__table__)
            .where(c.id.in_(ids[start:start + 1000]), c.step == 0)
            .values(step=1, next_fire_at=c.due_at)
        )
    calendar = cal_mod.current()
    unit_staff = notify.staff_of(
        {r.unit_id for r in rows if r.assignee_id is None and (r.ticket_id, r.kind, r.cycle)
         in fired}, notify.HANDLING)
    notices = []
    for r in rows:
        if (r.ticket_id, r.kind, r.cycle) not in fired:
            continue
        users = [r.assignee_id] if r.assignee_id is not None else unit_staff.get(r.unit_id, [])
        label = CLOCK_LABELS.get(ClockKind(r.kind), r.kind)
        local = r.due_at.astimezone(cal_mod.SHANGHAI) if r.due_at.tzinfo else r.due_at
        notices += notify.notice_rows(
            users, kind="due_soon", at=now, ticket_id=r.ticket_id,
            title=f"工单{r.number}{label}即将超时",
            body=f"时限 {local:%m-%d %H:%M}", urgent=r.urgency == "emergency",
            data={"number": r.number, "clock": r.kind, "deadline": r.due_at.isoformat()},
            calendar=calendar)
    if notices:
        db.session.execute(sa.insert(notify.Notification), notices)
    return len(rows)


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
