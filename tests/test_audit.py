"""The audit chain: the database refuses to rewrite history, and ``yihao audit-verify`` names
the first broken link when someone with the triggers out of the way rewrites it anyway.

To tamper, a test steps around the append-only guard the way an intruder with database
rights would: SQLite drops the triggers (each test has its own database file), PostgreSQL
uses ``session_replication_role = replica`` on one connection (no trigger, including the
foreign-key ones, fires for that session only).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from hierarchy.models import User
from server.cli import main as cli_main
from server.core.audit import Event, EventHead, append_event, verify_chain
from server.core.db import db
from server.tickets.models import Ticket
from tests.conftest import Api, World, count_queries, is_pg

events = Event.__table__
heads = EventHead.__table__


# ---------------------------------------------------------------- helpers


def _stream(app: Flask, number: str) -> str:
    with app.app_context():
        ticket_id = db.session.execute(
            sa.select(Ticket.id).where(Ticket.number == number)).scalar_one()
    return f"ticket:{ticket_id}"


def _seqs(app: Flask, stream: str) -> list[int]:
    with app.app_context():
        return list(db.session.execute(
            sa.select(events.c.seq).where(events.c.stream == stream).order_by(events.c.seq)
        ).scalars())


@contextmanager
def _tamper(app: Flask) -> Iterator[sa.Connection]:
    """A connection on which the append-only guard (and foreign keys) do not apply."""
    with app.app_context():
        engine = db.engine
    if is_pg():
        with engine.connect() as conn:
            conn.exec_driver_sql("SET session_replication_role = replica")  # this session only
            conn.commit()
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.exec_driver_sql("SET session_replication_role = DEFAULT")
                conn.commit()
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")  # only outside a transaction
            conn.commit()
            with conn.begin():
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS events_append_only_update")
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS events_append_only_delete")
                yield conn
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
            conn.commit()


def _audit_verify(app: Flask) -> Any:
    return app.test_cli_runner().invoke(cli_main, ["audit-verify"])


def _first_break(app: Flask) -> Any:
    with app.app_context():
        return next(iter(verify_chain()), None)


@pytest.fixture
def ticket_stream(app: Flask, world: World, walk: Any) -> str:
    """A ticket with seven events: accept, three dispatches, sign, check-in, reply."""
    number = walk("replied")
    stream = _stream(app, number)
    assert _seqs(app, stream) == [1, 2, 3, 4, 5, 6, 7]
    return stream


# ---------------------------------------------------------------- the database refuses


@pytest.mark.parametrize("statement", [
    "UPDATE events SET actor_name = 'mallory'",
    "UPDATE events SET data = data WHERE seq = 1",
    "DELETE FROM events WHERE seq = 1",
    "DELETE FROM events",
])
def test_database_refuses_to_rewrite_events(app, ticket_stream, statement):
    with app.app_context():
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as conn:
            conn.exec_driver_sql(statement)
        assert _seqs(app, ticket_stream) == [1, 2, 3, 4, 5, 6, 7]


def test_orm_cannot_rewrite_an_event_either(app, ticket_stream):
    with app.app_context():
        event = db.session.execute(
            sa.select(Event).where(Event.stream == ticket_stream, Event.seq == 2)).scalar_one()
        event.actor_name = "mallory"
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.get(Event, event.id))
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.commit()
        db.session.rollback()
    assert _first_break(app) is None


@pytest.mark.skipif(not is_pg(), reason="TRUNCATE is PostgreSQL's")
def test_database_refuses_truncate(app, ticket_stream):
    with app.app_context(), pytest.raises(sa.exc.DatabaseError, match="append-only"), \
            db.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE events CASCADE")
    assert _seqs(app, ticket_stream) == [1, 2, 3, 4, 5, 6, 7]


# ---------------------------------------------------------------- audit-verify


def test_audit_verify_passes_a_clean_chain(app, ticket_stream):
    result = _audit_verify(app)
    assert result.exit_code == 0, result.output
    total = re.search(r"(\d+) events verified", result.output)
    assert total and int(total.group(1)) > 7


def _alter_actor(conn: sa.Connection, stream: str) -> None:
    conn.execute(events.update().where(events.c.stream == stream, events.c.seq == 3)
                 .values(actor_name="mallory"))


def _alter_data(conn: sa.Connection, stream: str) -> None:
    conn.execute(events.update().where(events.c.stream == stream, events.c.seq == 3)
                 .values(data={"unit": "210103", "note": "改过的"}))


def _alter_time(conn: sa.Connection, stream: str) -> None:
    row = conn.execute(sa.select(events.c.at).where(
        events.c.stream == stream, events.c.seq == 3)).scalar_one()
    conn.execute(events.update().where(events.c.stream == stream, events.c.seq == 3)
                 .values(at=row.replace(microsecond=(row.microsecond + 1) % 1_000_000)))


def _forge_hash(conn: sa.Connection, stream: str) -> None:
    """Alter and re-hash with a guessed key: the HMAC key lives outside the database."""
    import hashlib

    conn.execute(events.update().where(events.c.stream == stream, events.c.seq == 3)
                 .values(actor_name="mallory", hash=hashlib.sha256(b"forged").hexdigest()))


def _remove_middle(conn: sa.Connection, stream: str) -> None:
    conn.execute(events.delete().where(events.c.stream == stream, events.c.seq == 3))


def _remove_newest(conn: sa.Connection, stream: str) -> None:
    conn.execute(events.delete().where(events.c.stream == stream, events.c.seq == 7))


def _remove_newest_and_rewind_head(conn: sa.Connection, stream: str) -> None:
    """Remove the newest event and point the head at the one before: the hash still differs
    unless the forger can compute it, but the head's hash is copied from the remaining row."""
    conn.execute(events.delete().where(events.c.stream == stream, events.c.seq == 7))
    prev = conn.execute(sa.select(events.c.hash).where(
        events.c.stream == stream, events.c.seq == 6)).scalar_one()
    conn.execute(heads.update().where(heads.c.stream == stream).values(seq=6, hash=prev))


def _swap_seqs(conn: sa.Connection, stream: str) -> None:
    where = events.c.stream == stream
    conn.execute(events.update().where(where, events.c.seq == 3).values(seq=-1))
    conn.execute(events.update().where(where, events.c.seq == 4).values(seq=3))
    conn.execute(events.update().where(where, events.c.seq == -1).values(seq=4))


def _swap_content(conn: sa.Connection, stream: str) -> None:
    cols = [c for c in events.c if c.name not in ("id", "stream", "seq")]
    rows = {r.seq: r for r in conn.execute(
        sa.select(events).where(events.c.stream == stream, events.c.seq.in_([3, 4])))}
    for here, there in ((3, 4), (4, 3)):
        conn.execute(events.update().where(events.c.id == rows[here].id)
                     .values({c.name: getattr(rows[there], c.name) for c in cols}))


def _remove_head(conn: sa.Connection, stream: str) -> None:
    conn.execute(heads.delete().where(heads.c.stream == stream))


def _remove_whole_stream(conn: sa.Connection, stream: str) -> None:
    conn.execute(sa.text("UPDATE outbox SET event_id = NULL"))
    conn.execute(events.delete().where(events.c.stream == stream))


@pytest.mark.parametrize(("tamper", "seq", "reason"), [
    (_alter_actor, 3, "altered"),
    (_alter_data, 3, "altered"),
    (_alter_time, 3, "altered"),
    (_forge_hash, 3, "altered"),
    (_remove_middle, 3, "events removed"),
    (_remove_newest, 7, "newest events removed"),
    (_remove_newest_and_rewind_head, 7, "newest events removed and the head rewound"),
    (_swap_seqs, 3, "reordered"),
    (_swap_content, 3, "reordered"),
    (_remove_head, 7, "head row removed"),
    (_remove_whole_stream, 1, "no events remain"),
])
def test_audit_verify_names_the_first_broken_link(app, ticket_stream, tamper, seq, reason):
    assert _audit_verify(app).exit_code == 0
    anchored = app.test_cli_runner().invoke(cli_main, ["audit-anchor"])  # the hourly job
    assert anchored.exit_code == 0 and "anchored" in anchored.output, anchored.output
    with _tamper(app) as conn:
        tamper(conn, ticket_stream)
    broken = _first_break(app)
    assert broken is not None, "tampering went unnoticed"
    assert (broken.stream, broken.seq) == (ticket_stream, seq), str(broken)
    assert reason in broken.reason
    result = _audit_verify(app)
    assert result.exit_code == 1, result.output
    assert f"stream {ticket_stream} seq {seq} " in result.output, result.output
    assert "BROKEN" in result.output
    with app.app_context():  # nothing else is reported: every other stream is intact
        assert {b.stream for b in verify_chain()} == {ticket_stream}


def test_audit_verify_reports_the_first_break_of_several(app, world, walk):
    first, second = _stream(app, walk("replied")), _stream(app, walk("replied"))
    with _tamper(app) as conn:
        _alter_actor(conn, second)
        _remove_middle(conn, first)
    with app.app_context():
        found = [(b.stream, b.seq) for b in verify_chain()]
    assert found[0] == min((first, 3), (second, 3))
    assert set(found) >= {(first, 3), (second, 3)}


# ---------------------------------------------------------------- verify on a live system


def test_verify_sees_one_snapshot_while_others_write(app, world, walk):
    """audit-verify runs beside the web and worker processes: an event committed between its
    reads of heads and events must not be reported as tampering."""
    number = walk("in_progress")
    fired: list[Any] = []

    def write_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if fired or "event_heads" not in statement or "INSERT" in statement.upper():
            return
        fired.append(True)

        def urge() -> None:
            token = world.tokens["county"]
            fired.append(Api(app.test_client(), token).post(
                f"/tickets/{number}/urge", {"note": "请加快"}).status_code)

        writer = threading.Thread(target=urge)
        writer.start()
        writer.join(30)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", write_meanwhile)
    try:
        with app.app_context():
            broken = [str(b) for b in verify_chain()]
    finally:
        sa.event.remove(engine, "after_cursor_execute", write_meanwhile)
    assert fired[1:] == [200], "the concurrent write did not happen"
    assert broken == []
    assert _first_break(app) is None


# ---------------------------------------------------------------- no global serialisation


def test_an_action_locks_only_its_own_ticket_and_stream(app, world, walk):
    number = walk("in_progress")
    stream = _stream(app, number)
    api = Api(app.test_client(), world.tokens["county"])
    with count_queries(app) as statements:
        assert api.post(f"/tickets/{number}/urge", {"note": "请加快"}).status_code == 200
    writes = [s for s in statements
              if s.lstrip().upper().startswith(("UPDATE", "DELETE", "INSERT"))]
    locks = [s for s in statements if "FOR UPDATE" in s.upper()]
    for statement in writes + locks:
        upper = statement.upper()
        if upper.lstrip().startswith("INSERT"):
            continue  # new rows (event, outbox message) collide with no one
        assert "WHERE" in upper, f"unkeyed write or lock: {statement}"
    head_statements = [s for s in statements if "event_heads" in s]
    assert head_statements, "the head of the stream was not read"
    for statement in head_statements:
        if not statement.lstrip().upper().startswith("INSERT"):
            assert re.search(r"event_heads\.stream\s*=", statement), statement
    assert stream.startswith("ticket:")


def _hold_stream_head(app: Flask, stream: str, locked: threading.Event,
                      release: threading.Event, errors: list[BaseException]) -> None:
    try:
        with app.app_context():
            append_event(stream, "test.hold", actor=None, data={"holding": True})
            locked.set()
            assert release.wait(30)
            db.session.commit()
            db.session.remove()
    except BaseException as exc:  # reported by the test
        errors.append(exc)
        locked.set()


def _append_in_thread(app: Flask, stream: str) -> tuple[threading.Thread, list[Any]]:
    done: list[Any] = []

    def run() -> None:
        try:
            with app.app_context():
                append_event(stream, "test.other", actor=None)
                db.session.commit()
                db.session.remove()
            done.append(time.monotonic())
        except BaseException as exc:  # reported by the test
            done.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


@pytest.mark.postgres_only
@pytest.mark.skipif(not is_pg(), reason="SQLite has one write lock for the whole database")
@pytest.mark.parametrize(("other", "waits"), [("unit:other-stream", False),
                                              ("unit:held-stream", True)])
def test_appending_locks_only_that_streams_head(app, world, other, waits):
    """A writer on one stream does not wait for a transaction holding another stream's head;
    a writer on the same stream does (the control that shows the lock is real)."""
    held = "unit:held-stream"
    with app.app_context():
        append_event(held, "test.create", actor=None)
        append_event("unit:other-stream", "test.create", actor=None)
        db.session.commit()
    locked, release, errors = threading.Event(), threading.Event(), []
    holder = threading.Thread(target=_hold_stream_head, args=(app, held, locked, release, errors))
    holder.start()
    assert locked.wait(30) and not errors, errors
    writer, done = _append_in_thread(app, other)
    writer.join(3.0)
    finished_while_held = bool(done)
    release.set()
    holder.join(30)
    writer.join(30)
    assert not errors, errors
    assert done and not isinstance(done[0], BaseException), done
    assert finished_while_held is not waits
    assert _first_break(app) is None


@pytest.mark.postgres_only
@pytest.mark.skipif(not is_pg(), reason="SQLite has one write lock for the whole database")
def test_actions_on_different_tickets_do_not_wait_for_each_other(app, world, walk):
    first, second = walk("in_progress"), walk("in_progress")
    from server.tickets import operations as ops
    from server.tickets import schemas
    from server.tickets.queries import get_visible_ticket

    locked, release, errors = threading.Event(), threading.Event(), []

    def hold_first() -> None:
        try:
            with app.app_context():
                user = db.session.get(User, world.users["county"])
                ticket = get_visible_ticket(user, first, lock=True)
                ops.do_urge(ops.check_urge(user, ticket, schemas.UrgeBody(note="占着")))
                locked.set()
                assert release.wait(30)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            locked.set()

    holder = threading.Thread(target=hold_first)
    holder.start()
    assert locked.wait(30) and not errors, errors
    out: list[Any] = []
    writer = threading.Thread(target=lambda: out.append(Api(
        app.test_client(), world.tokens["city"]).post(f"/tickets/{second}/urge",
                                                      {"note": "另一张"})))
    writer.start()
    writer.join(5.0)
    finished_while_held = bool(out)
    release.set()
    holder.join(30)
    writer.join(30)
    assert not errors, errors
    assert finished_while_held, "an action on another ticket waited for this one's lock"
    assert out[0].status_code == 200
    assert _first_break(app) is None


# ---------------------------------------------------------------- anchors outside the database


def _anchor(app: Flask) -> Any:
    return app.test_cli_runner().invoke(cli_main, ["audit-anchor"])


def test_a_rewind_before_any_anchor_goes_unnoticed_which_is_why_anchors_run_hourly(
        app, ticket_stream):
    """The limit, stated as a test: what was appended since the last anchor can be rewound."""
    with _tamper(app) as conn:
        _remove_newest_and_rewind_head(conn, ticket_stream)
    assert _first_break(app) is None


def test_anchors_hold_only_what_moved_and_are_sent_out(app, world, walk):
    from server.core.anchors import anchor_path, read_anchors
    from server.core.outbox import OutboxMessage

    first = _stream(app, walk("assigned"))
    out = _anchor(app)
    assert out.exit_code == 0, out.output
    with app.app_context():
        path = anchor_path()
        assert path is not None
        assert read_anchors(path)[first].seq == 4
        lines = path.read_text().splitlines()
        sent = db.session.execute(sa.select(OutboxMessage.payload).where(
            OutboxMessage.topic == "audit.anchor")).scalars().all()
    assert len(lines) == 1 and len(sent) == 1 and sent[0]["streams"] >= 1
    assert "anchored 0 of" in _anchor(app).output  # nothing moved: nothing written
    second = _stream(app, walk("accepted"))
    assert "anchored 1 of" in _anchor(app).output
    with app.app_context():
        anchored = read_anchors(anchor_path())  # type: ignore[arg-type]
    assert anchored[second].seq == 1 and anchored[first].seq == 4


def test_an_edited_anchor_file_is_itself_reported(app, ticket_stream):
    from server.core.anchors import anchor_path

    assert _anchor(app).exit_code == 0
    with app.app_context():
        path = anchor_path()
    assert path is not None
    path.write_text(path.read_text().replace('"seq"', '"seq"').replace(",7,", ",6,").replace(
        "[7,", "[6,"))
    result = _audit_verify(app)
    assert result.exit_code == 1 and "MAC" in result.output, result.output
