"""The one place that decides which tickets an actor can see.

Every read of tickets — lists, a single ticket, photos, events — starts from
:func:`visible_tickets`; a ticket outside it answers 404, never 403, so its existence is not
disclosed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from grids.models import GridMember
from hierarchy.models import Role, User
from hierarchy.scoping import subtree_unit_ids
from server.core.db import db
from server.core.errors import NotFound

from .models import Ticket


def visible_clause(user: User) -> sa.ColumnElement[bool]:
    if user.role == Role.grid_worker:
        my_grids = sa.select(GridMember.grid_id).where(GridMember.user_id == user.id)
        return sa.or_(
            Ticket.assignee_id == user.id,
            Ticket.grid_id.in_(my_grids),
            Ticket.created_by_id == user.id,
        )
    return Ticket.unit_id.in_(subtree_unit_ids(user.unit))


def visible_tickets(user: User) -> sa.Select[tuple[Ticket]]:
    return sa.select(Ticket).where(visible_clause(user))


def get_visible_ticket(user: User, number: str, *, lock: bool = False) -> Ticket:
    """Load a ticket the actor can see; with ``lock``, hold its row until commit.

    PostgreSQL takes ``FOR UPDATE``. SQLite has no row locks: a no-op UPDATE takes the
    database write lock first (pysqlite opens the transaction at the first write), and the
    row is then read again, fresh, so two writers can never act on the same stale state.
    """
    if "\x00" in number:  # PostgreSQL cannot even compare such text; no number holds it
        raise NotFound(f"ticket {number} not found", code="ticket_not_found")
    query = visible_tickets(user).where(Ticket.number == number)
    if lock:
        if db.engine.dialect.name == "sqlite":
            db.session.execute(
                sa.update(Ticket).where(Ticket.number == number).values(version=Ticket.version)
            )
            query = query.execution_options(populate_existing=True)
        else:
            query = query.with_for_update(of=Ticket).execution_options(populate_existing=True)
    ticket = db.session.execute(query).scalar_one_or_none()
    if ticket is None:
        raise NotFound(f"ticket {number} not found", code="ticket_not_found")
    return ticket


def lock_tickets_for_job(ticket_ids: list[int]) -> dict[int, Ticket]:
    """A system job's locks on many tickets in one statement: {id: ticket} for those it got.

    On PostgreSQL tickets being changed right now are skipped (``SKIP LOCKED``; the job
    comes back to them); their units come along (one more statement) since every event
    names its unit. On SQLite one no-op UPDATE takes the database's write lock.
    """
    if not ticket_ids:
        return {}
    query = (sa.select(Ticket).where(Ticket.id.in_(ticket_ids))
             .options(selectinload(Ticket.unit))
             .execution_options(populate_existing=True))
    if db.engine.dialect.name == "sqlite":
        db.session.execute(
            sa.update(Ticket).where(Ticket.id.in_(ticket_ids)).values(version=Ticket.version))
    else:
        query = query.with_for_update(of=Ticket, skip_locked=True)
    return {t.id: t for t in db.session.execute(query).scalars()}
