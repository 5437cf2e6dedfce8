"""The live stream: while the app is open it gets the same notices as push, over
server-sent events that resume from Last-Event-ID — on the test client and on a real
threaded WSGI server."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import Api


def parse(text: str) -> list[dict[str, Any]]:
    """SSE frames → [{"id", "event", "data", "retry"}] (comments dropped)."""
    out = []
    for frame in text.split("\n\n"):
        item: dict[str, Any] = {}
        for line in frame.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            item[name] = json.loads(value) if name == "data" else value
        if item:
            out.append(item)
    return out


@pytest.fixture
def quick(app: Flask) -> Flask:
    app.config.update(YIHAO_STREAM_SECONDS=1.0, YIHAO_STREAM_POLL_SECONDS=0.1,
                      YIHAO_STREAM_HEARTBEAT_SECONDS=0.3)
    return app


def stream(api: Api, **headers: str) -> Any:
    return api.client.get("/api/v1/events/stream", headers={**api.headers(), **headers})


def dispatch_to_worker(as_user: Callable[[str], Api], number: str) -> None:
    for who, body in (("hotline", {"unit": "210102"}), ("county", {"unit": "210102001"}),
                      ("township", {"grid": "G-HHW-01"})):
        assert as_user(who).post(f"/tickets/{number}/dispatch", body).status_code == 200


def test_the_stream_resumes_after_the_last_event_id(
        quick: Flask, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]]) -> None:
    worker = as_user("worker")
    first = accept()["number"]
    dispatch_to_worker(as_user, first)
    started = time.monotonic()
    resp = stream(worker)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"].startswith("no-cache")
    text = resp.get_data(as_text=True)
    assert 0.9 < time.monotonic() - started < 10  # bounded: the browser reconnects
    frames = parse(text)
    assert frames[0] == {"retry": "3000"}
    ready = frames[1]
    assert ready["event"] == "ready" and ready["data"]["live"] is True
    # Without Last-Event-ID it starts after the newest notice (the app reads the inbox).
    assert [f.get("event") for f in frames[2:]] == ["bye"]
    assert ": heartbeat" in text
    # The next assignment arrives on the next connection, which resumes after ``ready``.
    second = accept()["number"]
    dispatch_to_worker(as_user, second)
    frames = parse(stream(worker, **{"Last-Event-ID": ready["id"]}).get_data(as_text=True))
    notices = [f for f in frames if f.get("event") == "notice"]
    assert [n["data"]["ticket"] for n in notices] == [second]
    assert notices[0]["data"]["kind"] == "assigned" and int(notices[0]["id"]) > int(ready["id"])
    assert frames[-1]["event"] == "bye" and frames[-1]["data"]["after"] == int(notices[0]["id"])
    # ?after= does the same for the first connection; nobody sees another's notices.
    frames = parse(worker.client.get("/api/v1/events/stream", query_string={"after": "0"},
                                     headers=worker.headers()).get_data(as_text=True))
    assert [f["data"]["ticket"] for f in frames if f.get("event") == "notice"] == [first, second]
    frames = parse(as_user("backup").client.get(
        "/api/v1/events/stream", query_string={"after": "0"},
        headers=as_user("backup").headers()).get_data(as_text=True))
    assert [f for f in frames if f.get("event") == "notice"] == []


def test_a_notice_made_while_the_stream_is_open_arrives(
        quick: Flask, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]]) -> None:
    quick.config["YIHAO_STREAM_SECONDS"] = 3.0
    number = accept()["number"]
    errors: list[BaseException] = []

    def later() -> None:
        try:
            time.sleep(0.5)
            dispatch_to_worker(as_user, number)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    thread = threading.Thread(target=later)
    thread.start()
    text = stream(as_user("worker")).get_data(as_text=True)
    thread.join(30)
    assert not errors, errors
    notices = [f for f in parse(text) if f.get("event") == "notice"]
    assert [n["data"]["ticket"] for n in notices] == [number]


def test_bad_event_ids_are_refused(quick: Flask, as_user: Callable[[str], Api]) -> None:
    worker = as_user("worker")
    for bad in ("x", "-1", "1.5", str(2**63), "9" * 30, "²", "١٢"):
        resp = stream(worker, **{"Last-Event-ID": bad})
        assert resp.status_code == 422 and resp.get_json()["code"] == "invalid_event_id", bad
    assert worker.client.get("/api/v1/events/stream").status_code == 401


def test_when_every_slot_is_taken_the_stream_turns_into_a_poll(
        quick: Flask, as_user: Callable[[str], Api]) -> None:
    from server.api.stream import _slots_for

    quick.config["YIHAO_STREAM_SLOTS"] = 1
    slot = _slots_for(1)
    assert slot.acquire(blocking=False)
    try:
        started = time.monotonic()
        frames = parse(stream(as_user("worker")).get_data(as_text=True))
        assert time.monotonic() - started < 0.9  # answered at once, not held open
        assert frames[0] == {"retry": "15000"} and frames[1]["data"]["live"] is False
        assert frames[-1]["event"] == "bye"
    finally:
        slot.release()


@pytest.fixture
def served(quick: Flask) -> Iterator[str]:
    """The app on werkzeug's threaded server, on loopback."""
    server = make_server("127.0.0.1", 0, quick, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_events_are_flushed_as_they_happen_on_a_threaded_server(
        served: str, quick: Flask, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]]) -> None:
    quick.config["YIHAO_STREAM_SECONDS"] = 4.0
    number = accept()["number"]
    request = urllib.request.Request(f"{served}/api/v1/events/stream", headers={
        "Authorization": f"Bearer {world.tokens['worker']}", "Accept": "text/event-stream"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=20) as response:
        started = time.monotonic()
        lines: list[str] = []
        while not any(line.startswith("event: ready") for line in lines):
            lines.append(response.readline().decode().rstrip("\n"))
        assert time.monotonic() - started < 2  # not buffered until the end
        dispatch_to_worker(as_user, number)
        while not any(line.startswith("event: notice") for line in lines):
            lines.append(response.readline().decode().rstrip("\n"))
        arrived = time.monotonic() - started
        data = json.loads(response.readline().decode().removeprefix("data: "))
    assert arrived < 3.5, arrived
    assert data["ticket"] == number and data["kind"] == "assigned"
