"""Device reports (the phone's offline queue, seen from the server) and stuck devices.

Also the server side of the phone app: the ``Idempotency-Key`` echo the queue relies on, the
app shell, manifest, service worker and icons.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from PIL import Image

from tests.conftest import Api, World


def _report(api: Api, **body: Any) -> Any:
    payload = {"device_id": "dev-" + "a" * 12, "queue_length": 0, **body}
    return api.post("/devices/report", payload)


def _ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


def test_a_report_registers_the_device_once_and_updates_it(app: Flask, as_user: Callable) -> None:
    worker = as_user("worker")
    first = _report(worker, queue_length=2, oldest_item_at=_ago(minutes=3), persisted=True,
                    app_version="abc", storage_usage=1000, storage_quota=10**9)
    assert first.status_code == 200, first.get_json()
    device = first.get_json()["device"]
    assert device["queue_length"] == 2 and device["stuck"] is False and device["persisted"] is True
    again = _report(worker, queue_length=0)
    assert again.status_code == 200
    assert again.get_json()["device"]["queue_length"] == 0
    assert again.get_json()["device"]["oldest_item_at"] is None
    from pwa.models import Device
    from server.core.audit import Event
    from server.core.db import db

    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Device)).scalar_one() == 1
        kinds = db.session.execute(sa.select(Event.kind).where(
            Event.stream == "user:worker", Event.kind.like("device%"))).scalars()
        assert list(kinds) == ["device_registered"], "heartbeats are not audit events"


def test_stuck_devices_are_listed_for_the_jurisdiction_only(app: Flask, as_user: Callable) -> None:
    assert _report(as_user("worker"), queue_length=3, oldest_item_at=_ago(hours=2)).status_code == 200
    assert _report(as_user("worker3"), queue_length=1, oldest_item_at=_ago(hours=5)).status_code == 200
    assert _report(as_user("backup"), queue_length=1, oldest_item_at=_ago(minutes=2)).status_code == 200
    assert _report(as_user("worker2"), queue_length=1, oldest_item_at=_ago(minutes=1), attention=[
        {"ticket": "YH1", "action": "reply", "code": "stale_version", "status": 409}]).status_code == 200

    def stuck(user: str) -> set[str]:
        resp = as_user(user).get("/devices/stuck")
        assert resp.status_code == 200, resp.get_json()
        return {d["user"] for d in resp.get_json()["items"]}

    assert stuck("county") == {"worker", "worker2"}  # backup's item is young; worker3 is 沈河区
    assert stuck("county2") == {"worker3"}
    assert stuck("township") == {"worker", "worker2"}
    assert stuck("hotline") == {"worker", "worker2", "worker3"}
    items = as_user("county").get("/devices/stuck").get_json()["items"]
    by_user = {d["user"]: d for d in items}
    assert by_user["worker2"]["attention"][0]["code"] == "stale_version"
    assert by_user["worker"]["oldest_age_s"] >= 7000
    refused = as_user("worker").get("/devices/stuck")
    assert refused.status_code == 403


def test_becoming_stuck_and_clear_is_audited_and_sent_out(app: Flask, as_user: Callable) -> None:
    worker = as_user("worker")
    _report(worker, queue_length=1, oldest_item_at=_ago(minutes=5))
    _report(worker, queue_length=1, oldest_item_at=_ago(hours=1))
    _report(worker, queue_length=1, oldest_item_at=_ago(hours=1))
    _report(worker, queue_length=0)
    from server.core.audit import Event
    from server.core.db import db
    from server.core.outbox import OutboxMessage

    with app.app_context():
        kinds = list(db.session.execute(
            sa.select(Event.kind).where(Event.stream == "user:worker", Event.kind.like("device%"))
            .order_by(Event.seq)).scalars())
        topics = list(db.session.execute(
            sa.select(OutboxMessage.topic).where(OutboxMessage.topic.like("device.%"))
            .order_by(OutboxMessage.id)).scalars())
    assert kinds == ["device_registered", "device_stuck", "device_clear"]
    assert topics == ["device.stuck", "device.clear"]


@pytest.mark.parametrize("body", [
    {"device_id": "x", "queue_length": 0},                       # too short an id
    {"device_id": "dev-aaaaaaaaaaaa", "queue_length": -1},
    {"device_id": "dev-aaaaaaaaaaaa"},                           # no queue length
    {"device_id": "dev aaaa aaaa", "queue_length": 0},           # not an id's characters
    {"device_id": "dev-aaaaaaaaaaaa", "queue_length": 1, "oldest_item_at": "yesterday"},
    {"device_id": "dev-aaaaaaaaaaaa", "queue_length": 1,
     "oldest_item_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    {"device_id": "dev-aaaaaaaaaaaa", "queue_length": 0, "attention": [{"action": "reply"}]},
])
def test_bad_reports_are_422(as_user: Callable, body: dict[str, Any]) -> None:
    resp = as_user("worker").post("/devices/report", body)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] in ("invalid_input", "clock_skew")


def test_reports_need_login_and_csrf(client: Any, world: World) -> None:
    from tests.conftest import PASSWORD

    body = {"device_id": "dev-" + "b" * 12, "queue_length": 0}
    assert client.post("/api/v1/devices/report", json=body).status_code == 401
    login = client.post("/api/v1/session", json={"username": "worker", "password": PASSWORD,
                                                 "remember": True})
    assert login.status_code == 200
    assert client.post("/api/v1/devices/report", json=body).status_code == 403
    ok = client.post("/api/v1/devices/report", json=body,
                     headers={"X-CSRF-Token": login.get_json()["csrf_token"]})
    assert ok.status_code == 200, ok.get_json()


def test_a_remembered_login_outlives_the_browser(client: Any, world: World) -> None:
    from tests.conftest import PASSWORD

    resp = client.post("/api/v1/session", json={"username": "worker", "password": PASSWORD,
                                                "remember": True})
    cookie = resp.headers["Set-Cookie"]
    assert "Expires=" in cookie, "the phone's session survives a restart"
    resp = client.post("/api/v1/session", json={"username": "county", "password": PASSWORD})
    assert "Expires=" not in resp.headers["Set-Cookie"]


# ---------------------------------------------------------------- the key the queue relies on


def test_posts_echo_the_idempotency_key(as_user: Callable, walk: Callable) -> None:
    number = walk("assigned")
    worker = as_user("worker")
    key = str(uuid.uuid4())
    first = worker.post(f"/tickets/{number}/sign", {}, key=key)
    assert first.status_code == 200 and first.headers["Idempotency-Key"] == key
    replay = worker.post(f"/tickets/{number}/sign", {}, key=key)
    assert replay.status_code == 200 and replay.headers["Idempotency-Key"] == key
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = str(uuid.uuid4())
    refused = worker.post(f"/tickets/{number}/sign", {}, key=other)
    assert refused.status_code == 409 and refused.headers["Idempotency-Key"] == other
    assert "Idempotency-Key" not in worker.post(f"/tickets/{number}/sign", {}).headers


# ---------------------------------------------------------------- the app's files


def test_the_shell_manifest_worker_and_icons_are_served(client: Any) -> None:
    shell = client.get("/app/")
    assert shell.status_code == 200 and 'lang="zh-Hans"' in shell.get_data(as_text=True)
    html = shell.get_data(as_text=True)
    assert 'rel="manifest"' in html and "csrf" not in html.lower(), "the shell holds no user data"
    manifest = client.get("/app/manifest.webmanifest").get_json(force=True)
    assert manifest["display"] == "standalone" and manifest["scope"] == "/app/"
    assert manifest["start_url"].startswith("/app/")
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    assert any(i["purpose"] == "maskable" for i in manifest["icons"])
    for entry in manifest["icons"]:
        resp = client.get(entry["src"])
        assert resp.status_code == 200 and resp.mimetype == "image/png"
        size = int(entry["sizes"].split("x")[0])
        assert Image.open(io.BytesIO(resp.data)).size == (size, size)
    sw = client.get("/app/sw.js")
    assert sw.status_code == 200 and sw.mimetype == "text/javascript"
    text = sw.get_data(as_text=True)
    assert "importScripts" in text and "/app/static/queue.js" in text
    for url in ("/app/static/app.js", "/app/static/store.js", "/app/static/app.css"):
        assert url in text and client.get(url).status_code == 200
    assert client.get("/app/icons/64.png").status_code == 404


def test_a_queued_action_after_a_reassignment_is_a_409_with_the_ticket_now(
        as_user: Callable, walk: Callable) -> None:
    number = walk("in_progress")
    worker = as_user("worker")
    seen = worker.get(f"/tickets/{number}").get_json()["version"]
    moved = as_user("township").post(f"/tickets/{number}/dispatch", {"worker": "backup"})
    assert moved.status_code == 200
    body = {"result": "离线时写的结果", "resolution": "resolved", "base_version": seen}
    resp = worker.post(f"/tickets/{number}/reply", body, key=str(uuid.uuid4()))
    assert resp.status_code == 409, resp.get_json()
    error = resp.get_json()
    assert error["code"] == "reassigned"
    assert error["details"]["current"]["assignee"] == "backup"
    # without a version it saw, or from someone who never worked on it: still a plain 403
    assert worker.post(f"/tickets/{number}/reply", {**body, "base_version": None}).status_code == 403
    other = as_user("worker2").post(f"/tickets/{number}/reply", body)
    assert other.status_code == 404  # not in worker2's grid: not even visible


def test_the_stuck_devices_page_lists_the_jurisdictions_phones(client: Any, as_user: Callable
                                                               ) -> None:
    from tests.conftest import PASSWORD

    assert _report(as_user("worker"), queue_length=2, oldest_item_at=_ago(hours=3)).status_code == 200
    assert _report(as_user("worker3"), queue_length=1, oldest_item_at=_ago(hours=3)).status_code == 200
    assert client.get("/devices/stuck").status_code == 302  # to the login page
    client.post("/login", data={"username": "county", "password": PASSWORD})
    html = client.get("/devices/stuck").get_data(as_text=True)
    assert "worker（worker）" in html and "2 项" in html and "3 小时" in html
    assert "worker3" not in html, "沈河区's phone is not 和平区's business"
    client.post("/logout")
    client.post("/login", data={"username": "worker", "password": PASSWORD})
    assert client.get("/devices/stuck").status_code == 403
    assert "网格员手机工作台" in client.get("/").get_data(as_text=True)
