"""The floor under an accept: what the stack costs before any of Yihao's own work.

``bench/intake.py --floor`` serves this app next to the real one, on the same database, the
same gunicorn settings and the same load generator. Its ``POST /api/v1/tickets`` keeps the
plumbing of the real app — ``load_settings`` → Flask config, Flask-SQLAlchemy's session with
``pool_pre_ping``, one commit, one RQ job after it — and does only the writes that no accept
can do without, as SQLAlchemy Core statements into the real tables:

1. the bearer token's user,
2. the ``Idempotency-Key`` claim (``INSERT … ON CONFLICT DO NOTHING RETURNING``),
3. the ticket's id (PostgreSQL's sequence) and its row,
4. its sign and reply clocks (one statement),
5. the accept event and its chain head,
6. the outbox message,
7. the stored answer for the key,

then commit and enqueue the outbox delivery. Nothing else: no body validation, grid
matching, deadline rules, routing, duplicate search, auto-dispatch, encryption, HMAC or ORM
objects. Whatever CPU per request this measures on a machine is a lower bound for the real
accept there: if the floor alone cannot reach a throughput target, no tuning of Yihao's own
code can. It is a measuring instrument, not a way to accept tickets (its rows are fakes
that only have the right shape).
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from sqlalchemy.dialects import postgresql, sqlite


def create_floor_app() -> Flask:
    from escalation.models import Clock
    from hierarchy.models import ApiToken, User
    from hierarchy.tokens import hash_token
    from server.config import load_settings
    from server.core.audit import GENESIS, Event, EventHead
    from server.core.db import db, utcnow
    from server.core.idempotency import IdempotencyKey
    from server.core.outbox import OutboxMessage
    from server.jobs import deliver_outbox, queue
    from server.tickets.models import Ticket

    settings = load_settings()
    app = Flask("yihao-floor")
    app.config.update(settings.flask_config())
    db.init_app(app)
    tickets, clocks = Ticket.__table__, Clock.__table__
    events, heads = Event.__table__, EventHead.__table__
    keys, outbox = IdempotencyKey.__table__, OutboxMessage.__table__

    @app.get("/api/v1/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    @app.post("/api/v1/tickets")
    def accept() -> Any:
        body = request.get_json()
        token = request.headers["Authorization"][7:].strip()
        session = db.session
        postgres = session.get_bind().dialect.name == "postgresql"
        now = utcnow()
        user = session.execute(
            sa.select(User.id, User.unit_id, User.username).select_from(ApiToken)
            .join(ApiToken.user)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        ).one()
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        claim = (postgresql.insert if postgres else sqlite.insert)(keys).values(
            user_id=user.id, key=request.headers["Idempotency-Key"],
            request_hash=fingerprint, created_at=now,
        ).on_conflict_do_nothing().returning(keys.c.id)
        key_id = session.execute(claim).scalar_one()
        row = {
            "source": body["source"], "type": body["type"], "title": body["title"],
            "content": body["content"], "urgency": body["urgency"], "status": "accepted",
            "address": body.get("address"), "external_id": body.get("external_id"),
            "unit_id": user.unit_id, "accepting_unit_id": user.unit_id,
            "created_by_id": user.id, "reporter_anonymous": False,
            "accepted_at": now, "response_due": now + timedelta(days=1),
            "handling_due": now + timedelta(days=7), "deadline_provisional": False,
            "extension_count": 0, "urge_count": 0, "reopen_count": 0, "duplicate_count": 0,
            "version": 1, "updated_at": now,
        }
        if postgres:
            ticket_id = session.execute(sa.select(sa.func.nextval(
                sa.func.pg_get_serial_sequence("tickets", "id")))).scalar_one()
            number = f"YF{ticket_id:09d}"
            session.execute(sa.insert(tickets).values(id=ticket_id, number=number, **row))
        else:
            number = f"YF{key_id:09d}"
            ticket_id = session.execute(
                sa.insert(tickets).values(number=number, **row).returning(tickets.c.id)
            ).scalar_one()
        session.execute(sa.insert(clocks), [{
            "ticket_id": ticket_id, "cycle": 0, "kind": kind, "seq": 1,
            "ticket_type": body["type"], "urgency": body["urgency"], "level": "province",
            "scope_path": "/1/", "unit_id": user.unit_id,
            "unit_path": "/1/", "started_at": now, "due_at": due, "next_fire_at": due,
            "provisional": False, "step": 0, "extended_days": 0, "suspended_seconds": 0,
            "excused": False, "calendar_version": 1,
        } for kind, due in (("sign", row["response_due"]), ("reply", row["handling_due"]))])
        data = {"source": body["source"], "unit": "floor", "number": number}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        stream = f"ticket:{ticket_id}"
        event_id = session.execute(sa.insert(events).values(
            stream=stream, seq=1, ticket_id=ticket_id, kind="accept", actor_id=user.id,
            actor_name=user.username, at=now, data=data, prev_hash=GENESIS, hash=digest,
        ).returning(events.c.id)).scalar_one()
        session.execute(sa.insert(heads).values(stream=stream, seq=1, hash=digest))
        message_id = session.execute(sa.insert(outbox).values(
            topic="ticket.floor", ticket_id=ticket_id, event_id=event_id, payload=data,
            created_at=now, next_attempt_at=now + timedelta(days=365), attempts=0,
        ).returning(outbox.c.id)).scalar_one()
        answer = {"number": number, "status": "accepted", "grid": None, "unit": None,
                  "response_due": row["response_due"].isoformat(),
                  "handling_due": row["handling_due"].isoformat()}
        session.execute(sa.update(keys).where(keys.c.id == key_id).values(
            status_code=201, response=answer))
        session.commit()
        queue(app).enqueue(deliver_outbox, [message_id], job_timeout=120)
        return jsonify(answer), 201

    return app


if __name__ == "__main__":  # python bench/intake_floor.py HOST PORT WORKERS THREADS
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from server.wsgi_server import run_gunicorn

    run_gunicorn(create_floor_app(), sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                 int(sys.argv[4]))
