"""``Idempotency-Key``: the phone replays its offline queue and retries on flaky networks; a
repeated key must return the first answer and change nothing — sequentially and when the
copies arrive at the same moment (a replay racing the original that never got its answer).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from server.core.audit import Event, verify_chain
from server.core.db import db
from server.core.idempotency import IdempotencyKey
from server.core.outbox import OutboxMessage
from tests.conftest import ACCEPT_BODY, Api, World, is_pg, run_concurrently

REPEATS = 5
CHECK_IN = {"lng": 123.4306, "lat": 41.7421, "accuracy_m": 8, "fix_age_s": 5}
REPLY = {"result": "已更换灯泡，路灯恢复正常", "resolution": "resolved"}


def _counts(app: Flask) -> tuple[int, int, int]:
    """(events, outbox messages, stored keys) in the whole database."""
    with app.app_context():
        return tuple(  # type: ignore[return-value]
            db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (Event, OutboxMessage, IdempotencyKey)
        )


def _chain_ok(app: Flask) -> None:
    with app.app_context():
        assert list(verify_chain()) == []


def _concurrently(app: Flask, token: str, calls: int,
                  send: Callable[[Api], Any]) -> list[tuple[int, Any, dict[str, str]]]:
    """``calls`` copies of one request from one user, released together."""
    responses = run_concurrently(app, [(token, send)] * calls)
    return [(r.status_code, r.get_json(), dict(r.headers)) for r in responses]


# ---------------------------------------------------------------- sequential replays


def test_sequential_replays_of_sign_answer_the_first_result(app, world, as_user, walk):
    number = walk("assigned")
    worker = as_user("worker")
    before = _counts(app)
    key = str(uuid.uuid4())
    responses = [worker.post(f"/tickets/{number}/sign", key=key) for _ in range(REPEATS)]
    assert [r.status_code for r in responses] == [200] * REPEATS
    first = responses[0].get_json()
    assert first["status"] == "in_progress"
    assert "Idempotent-Replayed" not in responses[0].headers
    for r in responses[1:]:
        assert r.headers["Idempotent-Replayed"] == "true"
        assert r.get_json() == first
    events, messages, keys = _counts(app)
    assert (events, messages, keys) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert as_user("worker").get(f"/tickets/{number}").get_json()["version"] == first["version"]
    _chain_ok(app)


def test_sequential_replays_of_accept_create_one_ticket(app, world, as_user):
    hotline = as_user("hotline")
    before = _counts(app)
    key = str(uuid.uuid4())
    body = {**ACCEPT_BODY, "external_id": "idem-accept-1"}
    responses = [hotline.post("/tickets", body, key=key) for _ in range(REPEATS)]
    assert [r.status_code for r in responses] == [201] * REPEATS, responses[-1].get_json()
    numbers = {r.get_json()["number"] for r in responses}
    assert len(numbers) == 1
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in responses[1:])
    listed = hotline.get("/tickets", external_id="idem-accept-1").get_json()["items"]
    assert [t["number"] for t in listed] == list(numbers)
    assert _counts(app) == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_replay_of_a_whole_phone_queue_changes_nothing_the_second_time(app, world, as_user, walk):
    """The phone replays sign, check-in and reply with their original keys after a lost answer."""
    number = walk("assigned")
    worker = as_user("worker")
    queue = [("sign", {}, str(uuid.uuid4())), ("check-in", CHECK_IN, str(uuid.uuid4())),
             ("reply", REPLY, str(uuid.uuid4()))]
    first = [worker.post(f"/tickets/{number}/{a}", b, key=k) for a, b, k in queue]
    assert [r.status_code for r in first] == [200, 200, 200]
    after_first = _counts(app)
    again = [worker.post(f"/tickets/{number}/{a}", b, key=k) for a, b, k in queue]
    assert [r.status_code for r in again] == [200, 200, 200]
    assert [r.get_json() for r in again] == [r.get_json() for r in first]
    assert _counts(app) == after_first
    assert worker.get(f"/tickets/{number}").get_json()["status"] == "replied"


# ---------------------------------------------------------------- concurrent replays


def _assert_one_answer(results: list[tuple[int, Any, dict[str, str]]], status: int) -> Any:
    codes = [code for code, _body, _h in results]
    assert codes == [status] * len(results), [(c, b) for c, b, _h in results]
    bodies = [body for _code, body, _h in results]
    assert all(b == bodies[0] for b in bodies), bodies
    fresh = [h for _c, _b, h in results if "Idempotent-Replayed" not in h]
    assert len(fresh) == 1, "exactly one request ran; the others are replays"
    return bodies[0]


def test_concurrent_replays_of_sign_run_once(app, world: World, as_user, walk):
    number = walk("assigned")
    before = _counts(app)
    key = str(uuid.uuid4())
    results = _concurrently(app, world.tokens["worker"], REPEATS,
                            lambda api: api.post(f"/tickets/{number}/sign", key=key))
    body = _assert_one_answer(results, 200)
    assert body["status"] == "in_progress" and body["event"]["kind"] == "sign"
    assert _counts(app) == (before[0] + 1, before[1] + 1, before[2] + 1)
    _chain_ok(app)


def test_concurrent_replays_of_reply_run_once(app, world: World, as_user, walk):
    number = walk("on_site")
    before = _counts(app)
    key = str(uuid.uuid4())
    results = _concurrently(app, world.tokens["worker"], REPEATS,
                            lambda api: api.post(f"/tickets/{number}/reply", REPLY, key=key))
    body = _assert_one_answer(results, 200)
    assert body["status"] == "replied"
    assert _counts(app)[0] == before[0] + 1
    _chain_ok(app)


def test_concurrent_replays_of_accept_create_one_ticket(app, world: World, as_user):
    before = _counts(app)
    key = str(uuid.uuid4())
    body = {**ACCEPT_BODY, "external_id": "idem-accept-concurrent"}
    results = _concurrently(app, world.tokens["hotline"], REPEATS,
                            lambda api: api.post("/tickets", body, key=key))
    ticket = _assert_one_answer(results, 201)
    assert ticket["number"]
    assert _counts(app) == (before[0] + 1, before[1] + 1, before[2] + 1)
    _chain_ok(app)


def test_concurrent_accepts_without_external_id_are_still_one(app, world: World):
    """Only the key makes these the same request: no external_id to catch a duplicate."""
    before = _counts(app)
    key = str(uuid.uuid4())
    body = dict(ACCEPT_BODY)
    results = _concurrently(app, world.tokens["hotline"], REPEATS,
                            lambda api: api.post("/tickets", body, key=key))
    _assert_one_answer(results, 201)
    assert _counts(app) == (before[0] + 1, before[1] + 1, before[2] + 1)


# ---------------------------------------------------------------- what is and is not stored


def test_a_failed_action_does_not_store_its_key(app, world, as_user, walk):
    number = walk("assigned")
    worker = as_user("worker")
    key = str(uuid.uuid4())
    r = worker.post(f"/tickets/{number}/reply", REPLY, key=key)
    assert r.status_code == 409 and r.get_json()["code"] == "wrong_state"
    with app.app_context():
        assert db.session.execute(
            sa.select(IdempotencyKey).where(IdempotencyKey.key == key)).first() is None
    assert worker.post(f"/tickets/{number}/sign").status_code == 200
    assert worker.post(f"/tickets/{number}/check-in", CHECK_IN).status_code == 200
    r = worker.post(f"/tickets/{number}/reply", REPLY, key=key)
    assert r.status_code == 200, r.get_json()
    assert "Idempotent-Replayed" not in r.headers
    assert r.get_json()["status"] == "replied"
    again = worker.post(f"/tickets/{number}/reply", REPLY, key=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"


def test_invalid_input_does_not_store_its_key(app, world, as_user, walk):
    number = walk("on_site")
    worker = as_user("worker")
    key = str(uuid.uuid4())
    bad = {"result": "x", "resolution": "resolved"}  # result too short
    assert worker.post(f"/tickets/{number}/reply", bad, key=key).status_code == 422
    assert _counts(app)[2] == 0
    assert worker.post(f"/tickets/{number}/reply", bad, key=key).status_code == 422


def test_same_key_with_a_different_body_is_refused(app, world, as_user, walk):
    number = walk("on_site")
    worker = as_user("worker")
    key = str(uuid.uuid4())
    assert worker.post(f"/tickets/{number}/reply", REPLY, key=key).status_code == 200
    before = _counts(app)
    other = {**REPLY, "result": "换了别的灯泡"}
    r = worker.post(f"/tickets/{number}/reply", other, key=key)
    assert r.status_code == 422 and r.get_json()["code"] == "idempotency_key_reused"
    # … and on a different path (another action) with the same key.
    r = worker.post(f"/tickets/{number}/request-extension", {"days": 2, "reason": "等待配件"},
                    key=key)
    assert r.status_code == 422 and r.get_json()["code"] == "idempotency_key_reused"
    assert _counts(app) == before


def test_keys_belong_to_one_user(app, world, as_user, walk):
    """The same UUID from two phones (or two systems) names two different requests."""
    first, second = walk("assigned"), walk("accepted")
    key = "shared-key-0001"
    r = as_user("worker").post(f"/tickets/{first}/sign", key=key)
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    r = as_user("hotline").post(f"/tickets/{second}/dispatch", {"unit": "210102"}, key=key)
    assert r.status_code == 200, r.get_json()
    assert "Idempotent-Replayed" not in r.headers
    assert r.get_json()["unit"] == "210102"
    assert _counts(app)[2] == 2


def test_malformed_keys_are_refused(app, world, as_user, walk):
    number = walk("assigned")
    worker = as_user("worker")
    for key in (" ", "k" * 129, "tab\there"):
        r = worker.client.post(f"/api/v1/tickets/{number}/sign", json={},
                               headers={**worker.headers(), "Idempotency-Key": key})
        assert r.status_code == 422, (key, r.get_json())
        assert r.get_json()["code"] == "invalid_idempotency_key"
    assert as_user("worker").get(f"/tickets/{number}").get_json()["status"] == "assigned"


# ---------------------------------------------------------------- a replay meets its original


def _hold_key(app: Flask, world: World, key: str, path: str, body: Any,
              response: Any) -> tuple[Any, Any]:
    """Open a transaction that has claimed ``key`` for the worker, as a running original would,
    and keep it open; returns (app context, session) so the test decides commit or rollback."""
    from server.core import idempotency as idem

    ctx = app.app_context()
    ctx.push()
    db.session.add(IdempotencyKey(
        user_id=world.users["worker"], key=key,
        request_hash=idem.request_fingerprint("POST", f"/api/v1{path}", body),
        status_code=200, response=response))
    db.session.flush()  # the unique index entry (PostgreSQL) / the write lock (SQLite) is held
    return ctx, db.session


def _send_in_thread(app: Flask, token: str, path: str, body: Any, key: str) -> tuple[
        threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(Api(app.test_client(), token).post(path, body, key=key))
        except BaseException as exc:  # reported by the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_replay_waits_for_the_running_original_and_answers_its_result(app, world, walk):
    number = walk("assigned")
    key, path = str(uuid.uuid4()), f"/tickets/{number}/sign"
    ctx, session = _hold_key(app, world, key, path, {}, {"answer": "from the original"})
    try:
        thread, out = _send_in_thread(app, world.tokens["worker"], path, {}, key)
        thread.join(1.0)
        assert thread.is_alive() and not out, "the replay must wait, not answer 409"
        session.commit()
    finally:
        db.session.remove()
        ctx.pop()
    thread.join(60)
    assert out and not isinstance(out[0], BaseException), out
    assert out[0].status_code == 200, out[0].get_json()
    assert out[0].get_json() == {"answer": "from the original"}
    assert out[0].headers["Idempotent-Replayed"] == "true"


def test_a_replay_runs_itself_when_the_original_failed(app, world, walk):
    number = walk("assigned")
    key, path = str(uuid.uuid4()), f"/tickets/{number}/sign"
    ctx, session = _hold_key(app, world, key, path, {}, {"answer": "never committed"})
    try:
        thread, out = _send_in_thread(app, world.tokens["worker"], path, {}, key)
        thread.join(1.0)
        assert thread.is_alive() and not out
        session.rollback()
    finally:
        db.session.remove()
        ctx.pop()
    thread.join(60)
    assert out and not isinstance(out[0], BaseException), out
    assert out[0].status_code == 200, out[0].get_json()
    assert out[0].get_json()["status"] == "in_progress"
    assert "Idempotent-Replayed" not in out[0].headers


def test_an_original_holding_the_key_past_the_lock_timeout_means_retry(app, world, walk):
    """Only when the wait for the original times out is there no answer to give: that is a
    503 (the phone retries), never a 409 (the phone would park the action as refused)."""
    number = walk("assigned")
    with app.app_context():
        engine = db.engine
    engine.dispose()

    def short_lock_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET lock_timeout = '300ms'" if is_pg() else "PRAGMA busy_timeout = 300")
        cursor.close()

    sa.event.listen(engine, "connect", short_lock_wait)
    key, path = str(uuid.uuid4()), f"/tickets/{number}/sign"
    ctx, session = _hold_key(app, world, key, path, {}, {"answer": "still running"})
    try:
        thread, out = _send_in_thread(app, world.tokens["worker"], path, {}, key)
        thread.join(60)
        assert out and not isinstance(out[0], BaseException), out
        r = out[0]
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["code"] == "request_in_progress"
        session.commit()
    finally:
        db.session.remove()
        ctx.pop()
        sa.event.remove(engine, "connect", short_lock_wait)
    r = Api(app.test_client(), world.tokens["worker"]).post(path, {}, key=key)
    assert r.status_code == 200 and r.get_json() == {"answer": "still running"}
