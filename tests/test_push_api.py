"""Push subscriptions per device: create, renew on every app start, replace, move, delete,
and refuse what the server must not POST to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from tests.conftest import PASSWORD, Api
from tests.test_push import Browser, b64url


def _post(api: Api, body: dict[str, Any]) -> Any:
    return api.client.post("/api/v1/push/subscriptions", json=body, headers=api.headers())


def _delete(api: Api, body: dict[str, Any] | None = None, path: str = "") -> Any:
    return api.client.delete(f"/api/v1/push/subscriptions{path}", json=body,
                             headers=api.headers())


def _body(browser: Browser, device: str = "phone-0001") -> dict[str, Any]:
    return {"device_id": device, "subscription": browser.json()}


def _events(app: Flask, kind: str) -> list[dict[str, Any]]:
    from server.core.audit import Event
    from server.core.db import db

    with app.app_context():
        found = db.session.execute(sa.select(Event.data).where(Event.kind == kind)
                                   .order_by(Event.id)).scalars().all()
        db.session.remove()
        return list(found)


def test_subscribe_renew_replace_and_delete(app: Flask, as_user: Callable[[str], Api]) -> None:
    app.config["YIHAO_PUSH_ALLOW_INSECURE"] = True
    worker = as_user("worker")
    first = Browser("a", "https://push.example.net/send/aaaa")
    created = _post(worker, _body(first))
    assert created.status_code == 201, created.get_json()
    sub = created.get_json()
    assert sub["device_id"] == "phone-0001" and sub["service"] == "push.example.net"
    assert sub["failing"] is False and sub["failure_count"] == 0
    # Every app start sends it again: a renewal, no new row, no audit noise.
    renewed = _post(worker, _body(first))
    assert renewed.status_code == 200 and renewed.get_json()["id"] == sub["id"]
    assert renewed.get_json()["renewed_at"] >= sub["renewed_at"]
    assert len(_events(app, "push.subscribe")) == 1
    # The browser rotated the endpoint: the device's row is replaced.
    second = Browser("b", "https://push.example.net/send/bbbb")
    replaced = _post(worker, _body(second))
    assert replaced.status_code == 200 and replaced.get_json()["id"] == sub["id"]
    assert len(_events(app, "push.subscribe")) == 2
    # A second device is a second subscription.
    tablet = Browser("c", "https://push.example.net/send/cccc")
    assert _post(worker, _body(tablet, "tablet-0001")).status_code == 201
    items = worker.get("/push/subscriptions").get_json()["items"]
    assert [i["device_id"] for i in items] == ["phone-0001", "tablet-0001"]
    # A shared phone: another worker logs in there; the endpoint moves to them.
    backup = as_user("backup")
    assert _post(backup, _body(tablet, "shared-0001")).status_code == 201
    assert [i["device_id"] for i in worker.get("/push/subscriptions").get_json()["items"]] == [
        "phone-0001"]
    # Deleting: by device in the path, or by endpoint; someone else's is not found.
    assert _delete(backup, path="/phone-0001").status_code == 404
    assert _delete(worker, path="/phone-0001").get_json() == {"deleted": True}
    assert _delete(worker, path="/phone-0001").status_code == 404
    assert _delete(backup, {"endpoint": tablet.endpoint}).status_code == 200
    assert _delete(backup, {}).status_code == 422
    assert worker.get("/push/subscriptions").get_json() == {"items": [], "state": "none"}
    assert [e["device"] for e in _events(app, "push.unsubscribe")] == ["phone-0001", "shared-0001"]


def test_what_the_server_will_not_post_to(app: Flask, as_user: Callable[[str], Api]) -> None:
    worker = as_user("worker")
    good = Browser("x", "https://push.example.net/send/x")
    for endpoint in ("http://push.example.net/x", "https://127.0.0.1/x", "https://10.1.2.3/x",
                     "https://localhost/x", "https://user:pw@push.example.net/x",
                     "ftp://push.example.net/x", "https://[::1]/x", "https://push.example.net:99999/x",
                     "not a url at all"):
        body = _body(good)
        body["subscription"]["endpoint"] = endpoint
        resp = _post(worker, body)
        assert resp.status_code == 422, (endpoint, resp.get_json())
        assert resp.get_json()["code"] in ("invalid_endpoint", "invalid_input"), endpoint
    bad_keys = _body(good)
    bad_keys["subscription"]["keys"]["p256dh"] = b64url(b"\x04" + b"\x01" * 64)  # not on the curve
    assert _post(worker, bad_keys).get_json()["code"] == "invalid_keys"
    short_auth = _body(good)
    short_auth["subscription"]["keys"]["auth"] = b64url(b"x" * 12)
    assert _post(worker, short_auth).get_json()["code"] == "invalid_keys"
    for device in ("", "x", "has space!!", "y" * 65):
        assert _post(worker, _body(good, device)).status_code == 422, device
    huge_expiry = _body(good)
    huge_expiry["subscription"]["expirationTime"] = 10**17
    assert _post(worker, huge_expiry).status_code == 422
    assert _post(worker, {"device_id": "phone-0001"}).status_code == 422
    assert _post(worker, _body(good)).status_code == 201  # and the good one is taken


def test_cookie_sessions_need_the_csrf_token(app: Flask, world: Any) -> None:
    client = app.test_client()
    login = client.post("/api/v1/session", json={"username": "worker", "password": PASSWORD})
    assert login.status_code == 200
    body = _body(Browser("x", "https://push.example.net/send/x"))
    resp = client.post("/api/v1/push/subscriptions", json=body)
    assert resp.status_code == 403 and resp.get_json()["code"] == "csrf_failed"
    token = login.get_json().get("csrf_token")
    assert token, login.get_json()
    resp = client.post("/api/v1/push/subscriptions", json=body, headers={"X-CSRF-Token": token})
    assert resp.status_code == 201
    assert client.get("/api/v1/push/vapid-public-key").status_code == 200
