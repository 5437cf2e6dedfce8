"""The deadline scan: what has become due since the last one.

The scan reads only what has come due since it last looked, so its cost follows the number
of tickets becoming due, not the number open:

- the **due-soon sweep** reads the open clocks whose ``due_soon_at`` lies between the sweep's
  mark (``scan_marks``) and now — a range of ``ix_clocks_open_due_soon_at`` — and writes only
  their ``fired`` rows and one in-app notice per person, then moves the mark. It never
  writes the clocks: a burst of 9,000 reminders used to rewrite 9,000 wide clock rows (each
  on its own heap page, five index entries each), which cost more than everything else the
  reminders need (decision 20 in ``docs/decisions.md``);
- clocks whose **own next firing time** has come — a range of ``ix_clocks_next_fire``: a
  due-soon point set too near to be left to the sweep (``clocks.SWEEP_LEAD``), and every
  overdue rung. Due-soon ones are fired in bulk here, moving the clock on; overdue rungs
  are events on their tickets and are listed for the job to fire under the tickets' row
  locks.

Two scanners at once: the sweep's mark is locked for the sweep's transaction (``SKIP
LOCKED`` on PostgreSQL: the second scanner leaves the sweep to the first; on SQLite the
single writer lock serialises them), and clocks fired by their own time are claimed ``FOR
UPDATE SKIP LOCKED``. Either way the ``fired`` table's unique key is the last word: a
reminder is noticed only when its ``fired`` row is new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hierarchy.models import User
from server.core.db import UTCDateTime, db

from . import calendar as cal_mod
from . import notify
from .ladder import fired_insert, fired_key, insert_fired
from .models import Clock, Fired, ScanMark

#: Escalation may not import the ticket model; these are the columns it reads.
TICKETS = sa.table("tickets", sa.column("id"), sa.column("number"), sa.column("title"))


def _number_of(c: Any) -> sa.ColumnElement[Any]:
    """The number of a clock row's ticket (``c``: the columns of the clocks, or of rows read
    from them): the clock's own copy; for a clock started before it had one (migration
    0012), the ticket's — a lookup only for those."""
    ticket = sa.select(TICKETS.c.number).where(TICKETS.c.id == c.ticket_id).scalar_subquery()
    return sa.func.coalesce(c.ticket_number, ticket)


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
    if db.session.execute(_due_soon(now, 1)).first() is None:
        # Most scans find nothing due this way: one index probe — no write lock on SQLite,
        # and on PostgreSQL the planner is spared the four-part statement (a few
        # milliseconds to plan, every minute).
        return 0
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
    when its ``fired`` row is new, exactly as in the three-statement form.
    """
    table = Clock.__table__
    c = table.c
    due = _due_soon(now, limit).with_for_update(skip_locked=True).cte("due")
    claimed = (
        sa.update(table).where(c.id == due.c.id, c.step == 0)
        .values(step=1, next_fire_at=c.due_at)
        .returning(c.ticket_id, c.ticket_number, c.kind, c.cycle, c.due_at, c.assignee_id,
                   c.unit_id, c.urgency)
        .cte("claimed")
    )
    handled = sa.select(sa.func.count()).select_from(claimed).add_cte(_remind_pg(claimed, now))
    return int(db.session.execute(handled).scalar_one())


#: The due-soon sweep's row in ``scan_marks``; where a missing row starts (a database
#: never migrated to 0010, which inserts the row at its own moment).
DUE_SOON_MARK = "due_soon"
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Swept:
    """One sweep batch: clocks read in the range, and reminders handled (fired now, or
    found fired already)."""

    read: int = 0
    handled: int = 0


def sweep_due_soon(now: datetime, limit: int = 5000) -> Swept:
    """Fire the due-soon reminders of up to ``limit`` open clocks whose ``due_soon_at`` came
    since the sweep's mark, in the caller's transaction, and move the mark past them.

    The range is read in ``(due_soon_at, id)`` order, so a batch that stops inside a run of
    equal points resumes at the next clock. A clock in the range is reminded when it still
    waits for its reminder (``step`` 0, running, deadline not passed; a passed deadline is
    the ladder's: overdue, not due soon); its ``fired`` row (``ON CONFLICT DO NOTHING``)
    decides whether the notice is new. Nothing is written to the clocks.

    A clock being changed at this very moment is read as last committed: at worst its
    reminder crosses the action that stops it or moves its deadline — once per deadline,
    like every reminder. Returns :class:`Swept`; a batch that read ``limit`` clocks may
    have left more behind.
    """
    seen = _read_mark(DUE_SOON_MARK)
    if seen is not None and (now < seen[0] or db.session.execute(
            _sweep_range(seen, now, 1).with_only_columns(Clock.id)).first() is None):
        # Nothing new since the mark (most scans): one index probe, no lock, no write; the
        # mark stays, and the next sweep reads from it.
        return Swept()
    mark = _take_mark(DUE_SOON_MARK)
    if mark is None or now < mark[0]:
        return Swept()  # another scanner is sweeping; or this scan's moment is behind it
    swept = _sweep_range(mark, now, limit)
    if db.engine.dialect.name == "postgresql":
        read, handled, last = _sweep_pg(swept.cte("swept"), now)
    else:
        read, handled, last = _sweep_sqlite(swept, now)
    # A full batch stops at its last clock; a short one emptied the range up to now.
    through_at, through_id = last if last is not None and read >= limit else (now, _LAST_ID)
    db.session.execute(
        sa.update(ScanMark.__table__).where(ScanMark.name == DUE_SOON_MARK)
        .values(through_at=through_at, through_id=through_id, updated_at=now))
    return Swept(read, handled)


def _sweep_range(mark: tuple[datetime, int], now: datetime,
                 limit: int) -> sa.Select[tuple[Any, ...]]:
    """The open clocks whose ``(due_soon_at, id)`` lies after ``mark`` and at or before
    ``now``, the first ``limit`` in that order: a range of ``ix_clocks_open_due_soon_at``."""
    c = Clock.__table__.c
    after_at, after_id = mark
    return (
        sa.select(c.id, c.ticket_id, c.ticket_number, c.kind, c.cycle, c.due_at, c.due_soon_at,
                  c.assignee_id, c.unit_id, c.urgency, c.step, c.next_fire_at)
        .where(c.stopped_at.is_(None), c.due_soon_at <= now,
               sa.or_(c.due_soon_at > after_at,
                      sa.and_(c.due_soon_at == after_at, c.id > after_id)))
        .order_by(c.due_soon_at, c.id).limit(limit)
    )


def _read_mark(name: str) -> tuple[datetime, int] | None:
    row = db.session.execute(
        sa.select(ScanMark.through_at, ScanMark.through_id).where(ScanMark.name == name)).first()
    return (row.through_at, row.through_id) if row is not None else None


#: "Every clock at this instant": the mark after a batch that emptied the range up to now.
_LAST_ID = 2**53


def _take_mark(name: str) -> tuple[datetime, int] | None:
    """Lock the sweep's mark for this transaction and read it; None when another scanner
    holds it (PostgreSQL, ``SKIP LOCKED``). On SQLite a no-op UPDATE takes the database's
    write lock first, so a second scanner waits and then reads the moved mark."""
    t = ScanMark.__table__
    postgres = db.engine.dialect.name == "postgresql"
    if not postgres:
        db.session.execute(sa.update(t).where(t.c.name == name)
                           .values(through_at=t.c.through_at))
    query = sa.select(t.c.through_at, t.c.through_id).where(t.c.name == name)
    row = db.session.execute(query.with_for_update(skip_locked=True) if postgres
                             else query).first()
    if row is not None:
        return row.through_at, row.through_id
    if db.session.execute(sa.select(t.c.name).where(t.c.name == name)).first() is not None:
        return None  # there, and locked by another scanner
    insert = (postgresql.insert if postgres else sqlite.insert)(t).values(
        name=name, through_at=_BEGINNING, through_id=0, updated_at=_BEGINNING)
    db.session.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
    row = db.session.execute(query.with_for_update(skip_locked=True) if postgres
                             else query).first()
    return (row.through_at, row.through_id) if row is not None else None


def _waiting(rows: sa.FromClause, now: datetime) -> sa.ColumnElement[bool]:
    """Swept clocks that still wait for their reminder."""
    c = rows.c
    return sa.and_(c.step == 0, c.next_fire_at.is_not(None), c.due_at >= now)


def _sweep_pg(swept: sa.CTE, now: datetime) -> tuple[int, int, tuple[datetime, int] | None]:
    """The sweep on PostgreSQL as one statement (range, ``fired`` rows, notices), the
    claimed rows never travelling to Python; (read, handled, last key read)."""
    waiting = sa.select(swept).where(_waiting(swept, now)).cte("waiting")
    notices = _remind_pg(waiting, now)
    last = sa.select(swept.c.due_soon_at, swept.c.id).order_by(
        swept.c.due_soon_at.desc(), swept.c.id.desc()).limit(1).subquery()
    row = db.session.execute(
        sa.select(sa.select(sa.func.count()).select_from(swept).scalar_subquery(),
                  sa.select(sa.func.count()).select_from(waiting).scalar_subquery(),
                  last.c.due_soon_at, last.c.id)
        .select_from(last).add_cte(notices)
    ).first()
    if row is None:
        return 0, 0, None
    return row[0], row[1], (row[2], row[3])


def _sweep_sqlite(swept: sa.Select[tuple[Any, ...]], now: datetime) -> tuple[
        int, int, tuple[datetime, int] | None]:
    """The sweep on SQLite: the range read, then the ``fired`` rows and the notices for the
    new ones (SQLite has no data-modifying CTEs); the write lock is held throughout."""
    rows = db.session.execute(swept).all()
    if not rows:
        return 0, 0, None
    waiting = [r for r in rows if r.step == 0 and r.next_fire_at is not None
               and r.due_at >= now]
    fired = insert_fired([(r.ticket_id, r.kind, r.cycle, 0, r.due_at) for r in waiting], now)
    new = [r for r in waiting if fired_key(r.ticket_id, r.kind, r.cycle, 0, r.due_at) in fired]
    if new:
        c = Clock.__table__.c
        db.session.execute(_due_soon_notices(
            Clock.__table__, now, units=any(r.assignee_id is None for r in new),
            where=c.id.in_([r.id for r in new])))
    return len(rows), len(waiting), (rows[-1].due_soon_at, rows[-1].id)


def _remind_pg(clocks: sa.CTE, now: datetime) -> sa.CTE:
    """The data-modifying CTEs that remind ``clocks`` (rows with the clock's ``ticket_id``,
    ``ticket_number``, ``kind``, ``cycle``, ``due_at``, ``assignee_id``, ``unit_id`` and
    ``urgency``): their ``fired`` rows (``ON CONFLICT DO NOTHING RETURNING`` — the new
    ones), then one notice per person for the clocks whose row is new. Returns the last CTE,
    to attach to the statement that reads what it needs of ``clocks``; PostgreSQL runs both
    whether read or not."""
    f = Fired.__table__.c
    new = (
        fired_insert().from_select(
            ["ticket_id", "clock", "cycle", "rung", "deadline", "fired_at"],
            sa.select(clocks.c.ticket_id, clocks.c.kind, clocks.c.cycle, sa.literal(0),
                      clocks.c.due_at, sa.literal(now, UTCDateTime())))
        .returning(f.ticket_id, f.clock, f.cycle, f.deadline)
        .cte("new")
    )
    fresh = (
        sa.select(clocks.c.ticket_id, clocks.c.ticket_number, clocks.c.assignee_id,
                  clocks.c.unit_id, clocks.c.urgency)
        .join(new, sa.and_(new.c.ticket_id == clocks.c.ticket_id,
                           new.c.clock == clocks.c.kind, new.c.cycle == clocks.c.cycle,
                           new.c.deadline == clocks.c.due_at))
        .subquery()
    )
    return _due_soon_notices(fresh, now, units=True).cte("notices")


def _due_soon_notices(clocks: sa.FromClause, now: datetime, units: bool = True,
                      where: sa.ColumnElement[bool] | None = None) -> sa.Insert:
    """One in-app notice per person (and urgency) for these clocks — rows of ``clocks`` (the
    table, or the claimed rows on PostgreSQL) that match ``where``, with their
    ``ticket_id``, ``ticket_number``, ``assignee_id``, ``unit_id`` and ``urgency`` — as one
    ``INSERT … SELECT`` grouped by person: twenty tickets due soon make one notice listing
    twenty numbers.
    ``units``: some clocks are held by a unit, not a person (else that half is left out)."""
    c = clocks.c
    chosen = sa.true() if where is None else where
    number = _number_of(c).label("number")
    users = User.__table__.c
    postgres = db.engine.dialect.name == "postgresql"
    json = sa.func.jsonb_build_object if postgres else sa.func.json_object
    agg = sa.func.jsonb_agg if postgres else sa.func.json_group_array
    urgent = (c.urgency == "emergency").label("urgent")
    to_people = (
        sa.select(c.assignee_id.label("uid"), c.ticket_id.label("tid"), number, urgent)
        .where(chosen, c.assignee_id.is_not(None)))
    to_units = (
        sa.select(users.id.label("uid"), c.ticket_id.label("tid"), number, urgent)
        .select_from(clocks)
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
        sa.select(c.id, c.ticket_id, _number_of(c).label("number"))
        .where(_due_clause(now), sa.or_(c.step > 0, c.due_at < now))
        .order_by(c.next_fire_at)
        .limit(limit)
    ).all()
    return [(r.id, r.ticket_id, r.number) for r in rows]
