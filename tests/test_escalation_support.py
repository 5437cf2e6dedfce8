"""Helpers shared by the escalation tests (no tests here).

Time is frozen by passing it explicitly: tickets are accepted and acted on at given
instants through the real ``check_*`` / ``do_*`` actions (``Checked.at``, as the demo's
history replay does), and scans run with an explicit ``now``. Nothing patches the clock.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask

from tests.conftest import ACCEPT_BODY, World

SH_OFFSET_HOURS = 8


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as an aware UTC instant."""
    from escalation.calendar import SHANGHAI

    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def seed(app: Flask) -> None:
    """Seed calendar and rules (already there on SQLite via the migration; PostgreSQL tests
    empty every table between tests)."""
    from escalation.operations import seed as seed_escalation
    from server.core.db import db

    with app.app_context():
        seed_escalation()
        db.session.commit()


def accept_at(app: Flask, world: World, at: datetime, by: str = "hotline",
              **overrides: Any) -> str:
    from hierarchy.models import User
    from server.core.db import db
    from server.tickets import operations as ops
    from server.tickets import schemas

    with app.app_context():
        actor = db.session.get(User, world.users[by])
        raw = {**ACCEPT_BODY, "external_id": uuid.uuid4().hex, **overrides}
        body = schemas.AcceptBody.model_validate(raw)
        ticket = ops.do_accept(replace(ops.check_accept(actor, body), at=at))
        db.session.commit()
        number = ticket.number
        db.session.remove()
        assert number
        return number


def act_at(app: Flask, world: World, number: str, who: str, action: str,
           body: dict[str, Any] | None = None, at: datetime | None = None) -> dict[str, Any]:
    """Run a ticket action as ``who`` at ``at``; returns the event's data."""
    from hierarchy.models import User
    from server.core.db import db
    from server.tickets import operations as ops
    from server.tickets.queries import get_visible_ticket

    with app.app_context():
        actor = db.session.get(User, world.users[who])
        spec = ops.find_action(action)
        ticket = get_visible_ticket(actor, number, lock=True)
        checked = spec.check(actor, ticket, spec.body.model_validate(body or {}))
        event = spec.do(replace(checked, at=at) if at else checked)
        db.session.commit()
        data = dict(event.data)
        db.session.remove()
        return data


def scan(app: Flask, now: datetime, **kwargs: Any) -> Any:
    from server.jobs import run_scan

    with app.app_context():
        return run_scan(now, **kwargs)


def clocks(app: Flask, number: str) -> list[dict[str, Any]]:
    """The ticket's clocks as dicts, in creation order."""
    from escalation.models import Clock
    from server.core.db import db
    from server.tickets.models import Ticket

    with app.app_context():
        rows = db.session.execute(
            sa.select(Clock).join(Ticket, Ticket.id == Clock.ticket_id)
            .where(Ticket.number == number).order_by(Clock.id)).scalars().all()
        out = [{c.name: getattr(row, c.name) for c in Clock.__table__.columns} for row in rows]
        db.session.remove()
        return out


def open_clock(app: Flask, number: str, kind: str) -> dict[str, Any]:
    found = [c for c in clocks(app, number) if c["kind"] == kind and c["stopped_at"] is None]
    assert len(found) == 1, (kind, found)
    return found[0]


def ticket_row(app: Flask, number: str) -> dict[str, Any]:
    from server.core.db import db
    from server.tickets.models import Ticket

    with app.app_context():
        t = db.session.execute(sa.select(Ticket).where(Ticket.number == number)).scalar_one()
        out = {c.name: getattr(t, c.name) for c in Ticket.__table__.columns}
        db.session.remove()
        return out


def events(app: Flask, number: str, kind: str | None = None) -> list[dict[str, Any]]:
    from server.core.audit import Event
    from server.core.db import db
    from server.tickets.models import Ticket

    with app.app_context():
        t = db.session.execute(sa.select(Ticket).where(Ticket.number == number)).scalar_one()
        query = sa.select(Event).where(Event.stream == t.stream).order_by(Event.seq)
        if kind:
            query = query.where(Event.kind == kind)
        out = [{"kind": e.kind, "data": e.data, "at": e.at, "actor": e.actor_name}
               for e in db.session.execute(query).scalars()]
        db.session.remove()
        return out


def rows(app: Flask, model: Any, **where: Any) -> list[Any]:
    """Rows of an escalation table as dicts."""
    from server.core.db import db

    with app.app_context():
        query = sa.select(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        found = db.session.execute(query.order_by(model.id if hasattr(model, "id")
                                                  else sa.text("1"))).scalars().all()
        out = [{c.name: getattr(r, c.name) for c in model.__table__.columns} for r in found]
        db.session.remove()
        return out
