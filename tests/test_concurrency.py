"""Two people act on one ticket at the same moment: one wins, the other is told so (409 or,
when the winner took the ticket away from them, 403/404), nothing is lost or doubled, and the
audit chain stays whole.

The full-size races need PostgreSQL's row locks across several connections; SQLite runs
smaller variants of the same races plus a deterministic check that the lock taken by
:func:`server.tickets.queries.get_visible_ticket` really makes a second writer wait and read
fresh data afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from hierarchy.models import User
from server.core.audit import Event, verify_chain
from server.core.db import db
from server.tickets import operations as ops
from server.tickets import schemas
from server.tickets.models import Ticket
from server.tickets.queries import get_visible_ticket
from tests.conftest import ACCEPT_BODY, World, is_pg, run_concurrently

LOSER_CODES = {"wrong_state", "stale_version", "concurrent_update"}
ROUNDS = 6 if is_pg() else 2


def _state(app: Flask, number: str) -> dict[str, Any]:
    """The ticket row and its events, read straight from the database."""
    with app.app_context():
        ticket = db.session.execute(sa.select(Ticket).where(Ticket.number == number)).scalar_one()
        events = db.session.execute(
            sa.select(Event).where(Event.stream == ticket.stream).order_by(Event.seq)
        ).scalars().all()
        assert list(verify_chain()) == []
        return {"status": str(ticket.status), "version": ticket.version,
                "assignee": ticket.assignee.username if ticket.assignee else None,
                "urge_count": ticket.urge_count, "kinds": [e.kind for e in events],
                "seqs": [e.seq for e in events]}


def _one_winner(responses: list[Any]) -> tuple[Any, Any]:
    ok = [r for r in responses if 200 <= r.status_code < 300]
    failed = [r for r in responses if not 200 <= r.status_code < 300]
    assert len(ok) == 1 and len(failed) == 1, [(r.status_code, r.get_json()) for r in responses]
    assert failed[0].status_code != 500
    return ok[0], failed[0]


def _version(as_user: Any, number: str) -> int:
    return int(as_user("township").get(f"/tickets/{number}").get_json()["version"])


# ---------------------------------------------------------------- two actors, one ticket


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_dispatch_races_sign(app, world: World, as_user, walk, round_):
    """The township moves the ticket to the backup worker while the worker signs it."""
    number = walk("assigned")
    seen = _version(as_user, number)
    responses = run_concurrently(app, [
        (world.tokens["township"], lambda api: api.post(
            f"/tickets/{number}/dispatch", {"worker": "backup", "base_version": seen})),
        (world.tokens["worker"], lambda api: api.post(
            f"/tickets/{number}/sign", {"base_version": seen})),
    ])
    dispatch, sign = responses
    won, _lost = _one_winner(responses)
    state = _state(app, number)
    assert state["version"] == len(state["kinds"]) == seen + 1
    if won is dispatch:
        assert state["kinds"][-1] == "dispatch"
        assert (state["status"], state["assignee"]) == ("assigned", "backup")
        # The worker's phone learns the ticket is no longer theirs.
        assert sign.status_code in (403, 409), sign.get_json()
    else:
        assert state["kinds"][-1] == "sign"
        assert (state["status"], state["assignee"]) == ("in_progress", "worker")
        assert dispatch.status_code == 409 and dispatch.get_json()["code"] in LOSER_CODES


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_reviewers_approve_and_reject(app, world: World, as_user, walk, round_):
    number = walk("replied")
    responses = run_concurrently(app, [
        (world.tokens["township"], lambda api: api.post(f"/tickets/{number}/approve")),
        (world.tokens["county"], lambda api: api.post(f"/tickets/{number}/reject",
                                                      {"reason": "照片不清楚"})),
    ])
    approve, _reject = responses
    won, lost = _one_winner(responses)
    assert lost.status_code == 409 and lost.get_json()["code"] in LOSER_CODES, lost.get_json()
    state = _state(app, number)
    assert state["status"] == ("closed" if won is approve else "in_progress")
    assert state["kinds"][-1] == ("approve" if won is approve else "reject")
    assert state["kinds"].count("approve") + state["kinds"].count("reject") == 1
    assert state["version"] == len(state["kinds"])
    if lost.get_json()["code"] == "wrong_state":  # it shows what the winner made of it
        assert lost.get_json()["details"]["current"]["status"] == state["status"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_identical_approvals_close_once(app, world: World, walk, round_):
    number = walk("replied")
    responses = run_concurrently(app, [
        (world.tokens[name], lambda api: api.post(f"/tickets/{number}/approve"))
        for name in ("township", "county")
    ])
    _won, lost = _one_winner(responses)
    assert lost.status_code == 409 and lost.get_json()["code"] in LOSER_CODES
    assert _state(app, number)["kinds"].count("approve") == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_urges_lose_no_update(app, world: World, walk, round_):
    """Both urges are legitimate: both succeed and the counter counts both."""
    number = walk("in_progress")
    urgers = ["county", "township", "city", "hotline"] if is_pg() else ["county", "township"]
    responses = run_concurrently(app, [
        (world.tokens[name], lambda api, name=name: api.post(
            f"/tickets/{number}/urge", {"note": f"{name} 请尽快处理"}))
        for name in urgers
    ])
    assert [r.status_code for r in responses] == [200] * len(urgers), \
        [r.get_json() for r in responses]
    state = _state(app, number)
    assert state["urge_count"] == len(urgers)
    assert state["kinds"].count("urge") == len(urgers)
    assert state["seqs"] == list(range(1, len(state["seqs"]) + 1))
    assert state["version"] == len(state["kinds"])
    counts = sorted(r.get_json()["event"]["data"]["count"] for r in responses)
    assert counts == list(range(1, len(urgers) + 1)), "each urge saw the one before it"


# ---------------------------------------------------------------- many accepts at once


def test_many_concurrent_accepts(app, world: World, as_user):
    threads, per_thread = (8, 5) if is_pg() else (4, 3)

    def accept_several(api: Any) -> list[Any]:
        return [api.post("/tickets", {**ACCEPT_BODY, "external_id": uuid.uuid4().hex})
                for _ in range(per_thread)]

    batches = run_concurrently(app, [(world.tokens["hotline"], accept_several)] * threads)
    responses = [r for batch in batches for r in batch]
    assert [r.status_code for r in responses] == [201] * (threads * per_thread), \
        [r.get_json() for r in responses if r.status_code != 201]
    numbers = [r.get_json()["number"] for r in responses]
    assert len(set(numbers)) == len(numbers)
    with app.app_context():
        assert list(verify_chain()) == []
        per_ticket = db.session.execute(
            sa.select(Event.stream, sa.func.count(), sa.func.max(Event.seq))
            .where(Event.stream.like("ticket:%")).group_by(Event.stream)
        ).all()
    assert len(per_ticket) == len(numbers)
    assert all(count == 1 and last == 1 for _stream, count, last in per_ticket)


def test_same_external_id_accepted_concurrently_makes_one_ticket(app, world: World):
    body = {**ACCEPT_BODY, "external_id": "race-ext-1"}
    responses = run_concurrently(app, [
        (world.tokens["hotline"], lambda api: api.post("/tickets", body)) for _ in range(3)])
    created = [r for r in responses if r.status_code == 201]
    assert len(created) == 1, [(r.status_code, r.get_json()) for r in responses]
    for r in responses:
        if r.status_code != 201:
            assert r.status_code == 409, r.get_json()
            assert r.get_json()["code"] in ("duplicate_external_id", "concurrent_update")


# ---------------------------------------------------------------- the lock itself


def test_row_lock_makes_the_second_writer_wait_and_read_fresh(app, world: World, walk):
    """Deterministic: A holds the ticket lock and urges; B asks for the lock meanwhile, must
    not get it until A commits, and then sees A's change (no stale read, no lost update)."""
    number = walk("in_progress")
    a_locked, a_go = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    errors: list[BaseException] = []

    def urge(user_name: str, before_commit: threading.Event | None) -> dict[str, Any]:
        with app.app_context():
            user = db.session.get(User, world.users[user_name])
            ticket = get_visible_ticket(user, number, lock=True)
            got = {"urge_count": ticket.urge_count, "version": ticket.version,
                   "at": time.monotonic()}
            if before_commit is not None:
                a_locked.set()
                assert before_commit.wait(30)
            body = schemas.UrgeBody(note=f"{user_name} 催办")
            ops.do_urge(ops.check_urge(user, ticket, body))
            db.session.commit()
            db.session.remove()
            return got

    def run(name: str, key: str, gate: threading.Event | None) -> None:
        try:
            seen[key] = urge(name, gate)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
            a_locked.set()

    a = threading.Thread(target=run, args=("county", "a", a_go))
    a.start()
    assert a_locked.wait(30)
    b = threading.Thread(target=run, args=("city", "b", None))
    b.start()
    time.sleep(0.8)
    assert "b" not in seen and not errors, "B got the lock while A held it"
    released = time.monotonic()
    a_go.set()
    a.join(60)
    b.join(60)
    assert not errors, errors
    assert seen["b"]["at"] >= released
    assert seen["b"]["urge_count"] == seen["a"]["urge_count"] + 1
    assert seen["b"]["version"] == seen["a"]["version"] + 1
    state = _state(app, number)
    assert state["urge_count"] == 2 and state["version"] == len(state["kinds"])
