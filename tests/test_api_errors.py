"""Bad input never gets a 500: every error under /api/v1 is JSON with a stable ``code``.

Clients (the phone's offline queue first of all) decide from the status and the code what to
do with a failed item, so both are contract: 422 ``invalid_json`` / ``invalid_input`` /
``invalid_cursor`` …, 404 ``unknown_action`` / ``not_found``, 405 ``method_not_allowed``,
413 ``payload_too_large``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ACCEPT_BODY, Api, World


def raw_post(client: FlaskClient, api: Api, path: str, data: bytes | str,
             content_type: str = "application/json", key: str | None = None) -> Any:
    return client.post(f"/api/v1{path}", data=data, content_type=content_type,
                       headers=api.headers(key))


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data()[:300])
    assert resp.is_json, resp.get_data()[:300]
    body = resp.get_json()
    assert isinstance(body, dict) and isinstance(body.get("code"), str), body
    assert isinstance(body.get("message"), str), body
    if code is not None:
        assert body["code"] == code, body
    return body


# ---------------------------------------------------------------- bodies that are not objects


@pytest.mark.parametrize("data", [
    b"{not json", b'{"title": "x",}', b"", b"\xff\xfe\xfa", b'{"a": 1} trailing',
    "{" * 5000, "[" * 100000 + "]" * 100000, '{"a":' * 50000 + "1" + "}" * 50000,
])
def test_malformed_json(client, as_user, accept, data) -> None:
    api = as_user("hotline")
    for path in ("/tickets", f"/tickets/{accept()['number']}/dispatch"):
        resp = raw_post(client, api, path, data)
        if data == b"":
            # no body at all is an empty object: then the fields are missing
            assert_error(resp, 422, "invalid_input")
        else:
            assert_error(resp, 422, "invalid_json")


@pytest.mark.parametrize("data", ["[]", '[{"unit": "210102"}]', "null", '"text"', "42", "true"])
def test_json_that_is_not_an_object(client, as_user, accept, data) -> None:
    api = as_user("hotline")
    number = accept()["number"]
    for path in ("/tickets", f"/tickets/{number}/dispatch", f"/tickets/{number}/sign",
                 "/grids/match"):
        assert_error(raw_post(client, api, path, data), 422, "invalid_json")


def test_json_sent_as_another_type(client, as_user) -> None:
    """A JSON body without the JSON content type is not guessed at."""
    resp = raw_post(client, as_user("hotline"), "/tickets", json.dumps(ACCEPT_BODY),
                    content_type="text/plain")
    assert_error(resp, 422, "invalid_json")


# ---------------------------------------------------------------- wrong values


@pytest.mark.parametrize(("change", "field"), [
    ({"source": 1}, "source"), ({"source": "fax"}, "source"), ({"type": None}, "type"),
    ({"title": 123}, "title"), ({"title": ""}, "title"), ({"title": "   "}, "title"),
    ({"title": ["a"]}, "title"), ({"urgency": "panic"}, "urgency"),
    ({"location": "here"}, "location"), ({"location": {"lng": "east", "lat": 41}}, "location.lng"),
    ({"location": {"lng": 200, "lat": 41}}, "location.lng"),
    ({"location": {"lng": 123, "lat": 41, "crs": "mars"}}, "location.crs"),
    ({"reporter": []}, "reporter"), ({"reporter": {"anonymous": "maybe"}}, "reporter.anonymous"),
    ({"external_id": {"id": 1}}, "external_id"), ({"category_code": 12.5}, "category_code"),
])
def test_wrong_types(as_user, change, field) -> None:
    api = as_user("hotline")
    before = api.get("/tickets").get_json()["items"]
    body = assert_error(api.post("/tickets", {**ACCEPT_BODY, **change}), 422, "invalid_input")
    fields = [e["field"] for e in body["details"]["errors"]]
    assert fields[0] == field or field in fields, body
    assert body["message"].startswith(field), body
    assert api.get("/tickets").get_json()["items"] == before


@pytest.mark.parametrize(("action", "body"), [
    ("dispatch", {"unit": 210102}), ("dispatch", {"unit": ["210102"]}),
    ("dispatch", {"unit": "210102", "base_version": "one"}),
    ("dispatch", {"unit": "210102", "base_version": -1}),
    ("dispatch", {"unit": "210102", "base_version": 1.5}),
    ("check-in", {"lng": "east", "lat": 41}), ("check-in", {"lng": 123}),
    ("check-in", {"lng": 123.4, "lat": 41.7, "accuracy_m": -3}),
    ("reply", {"result": "修好了", "resolution": "done"}),
    ("reply", {"result": "修好了", "resolution": "resolved", "photos": "p1"}),
    ("reply", {"result": "修好了", "resolution": "resolved", "photos": ["x"] * 21}),
    ("reply", {"result": "修好了", "resolution": "resolved", "photos": ["x" * 37]}),
    ("request-extension", {"days": 2.5, "reason": "等配件"}),
    ("request-extension", {"days": 10**30, "reason": "等配件"}),
    ("decide-extension", {"approve": "perhaps"}), ("follow-up", {"reached": "yes?"}),
    ("urge", {"note": None}), ("reopen", {"reason": 42}),
])
def test_wrong_action_types(as_user, accept, action, body) -> None:
    number = accept()["number"]
    api = as_user("hotline")
    before = api.get(f"/tickets/{number}").get_json()
    assert_error(api.post(f"/tickets/{number}/{action}", body), 422, "invalid_input")
    assert api.get(f"/tickets/{number}").get_json() == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_that_are_not_numbers(client, as_user, literal) -> None:
    data = json.dumps({**ACCEPT_BODY, "location": {"lng": 0, "lat": 41.7}}).replace(
        '"lng": 0', f'"lng": {literal}')
    assert_error(raw_post(client, as_user("hotline"), "/tickets", data), 422, "invalid_input")


@pytest.mark.parametrize(("change", "status"), [
    ({"title": "长" * 1_000_000}, 422), ({"content": "长" * 10_001}, 422),
    ({"address": "x" * 100_000}, 422), ({"external_id": "x" * 65}, 422),
    ({"reporter": {"name": "x" * 1000, "phone": "1" * 1000}}, 422),
    ({"extra": "x" * 13 * 1024 * 1024}, 413),
])
def test_huge_strings(as_user, change, status) -> None:
    resp = as_user("hotline").post("/tickets", {**ACCEPT_BODY, **change})
    assert_error(resp, status, "invalid_input" if status == 422 else "payload_too_large")


@pytest.mark.parametrize("text", ["a\u0000b", "\ud800 lone surrogate", "\udfff"])
def test_strings_a_database_cannot_store(client, as_user, text) -> None:
    """NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8) are bad input, not a 500."""
    api = as_user("hotline")
    for change in ({"title": text}, {"content": text}, {"address": text},
                   {"reporter": {"name": text, "phone": "13912345678"}},
                   {"external_id": text}):
        data = json.dumps({**ACCEPT_BODY, **change})  # ASCII escapes keep the surrogate
        assert_error(raw_post(client, api, "/tickets", data), 422)
    assert api.get("/tickets").get_json()["items"] == []


def test_strange_strings_in_the_url(as_user) -> None:
    api = as_user("hotline")
    for number in ("x" * 5000, "%00", "YH%00", "%F0%9F%92%A9", "..%2F..%2Fetc", "' OR 1=1 --"):
        assert_error(api.get(f"/tickets/{number}"), 404)
        assert_error(api.get(f"/tickets/{number}/events"), 404)
        assert_error(api.post(f"/tickets/{number}/urge", {"note": "快"}), 404)
    for query in ({"q": "\x00"}, {"unit": "\x00"}, {"grid": "\x00"}, {"assignee": "a\x00"},
                  {"external_id": "\x00"}, {"q": "%_\\"}, {"status": "\x00"}):
        resp = api.get("/tickets", **query)
        assert resp.status_code in (200, 422), (query, resp.get_data()[:200])
        if resp.status_code == 422:
            assert_error(resp, 422)


# ---------------------------------------------------------------- routes and methods


def test_unknown_action(as_user, accept) -> None:
    number = accept()["number"]
    body = assert_error(as_user("hotline").post(f"/tickets/{number}/close-quietly", {}), 404,
                        "unknown_action")
    assert "close-quietly" in body["message"]
    assert_error(as_user("hotline").post(f"/tickets/{number}/" + "x" * 3000, {}), 404,
                 "unknown_action")


@pytest.mark.parametrize("path", ["/nothing-here", "/tickets/YH1/events/extra",
                                  "/tickets/YH1/sign/now", "/v2/tickets", "/"])
def test_unknown_route(as_user, path) -> None:
    assert_error(as_user("hotline").get(path), 404, "not_found")
    assert_error(as_user("hotline").post(path, {}), 404, "not_found")


def test_unknown_route_without_credentials(client) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/tickets"), ("PUT", "/tickets"), ("PATCH", "/tickets/YH1"),
    ("DELETE", "/tickets/YH1"), ("GET", "/tickets/YH1/sign"), ("PUT", "/units"),
    ("POST", "/units"), ("GET", "/grids/match"), ("GET", "/tickets/YH1/reveal-reporter"),
])
def test_wrong_method(client, as_user, method, path) -> None:
    resp = client.open(f"/api/v1{path}", method=method, json={},
                       headers=as_user("hotline").headers())
    body = assert_error(resp, 405, "method_not_allowed")
    assert body["message"]


# ---------------------------------------------------------------- Idempotency-Key


@pytest.mark.parametrize("key", ["k" * 129, " ", "\t", "bell\x07", "k" * 10_000])
def test_bad_idempotency_key(client, as_user, key) -> None:
    api = as_user("hotline")
    resp = client.post("/api/v1/tickets", json=ACCEPT_BODY,
                       headers={**api.headers(), "Idempotency-Key": key})
    assert_error(resp, 422, "invalid_idempotency_key")
    assert api.get("/tickets").get_json()["items"] == []


def test_longest_idempotency_key_is_fine(as_user) -> None:
    resp = as_user("hotline").post("/tickets", ACCEPT_BODY, key="k" * 128)
    assert resp.status_code == 201


def test_same_key_different_body(as_user, accept) -> None:
    api = as_user("hotline")
    first = api.post("/tickets", {**ACCEPT_BODY, "external_id": "e-1"}, key="same")
    assert first.status_code == 201
    resp = api.post("/tickets", {**ACCEPT_BODY, "external_id": "e-2"}, key="same")
    assert_error(resp, 422, "idempotency_key_reused")
    # the same key on another route is another request too
    number = first.get_json()["number"]
    assert_error(api.post(f"/tickets/{number}/dispatch", {"unit": "210102"}, key="same"), 422,
                 "idempotency_key_reused")
    assert len(api.get("/tickets").get_json()["items"]) == 1
    # a key belongs to its user: someone else's identical key is their own request
    assert as_user("city").post("/tickets", {**ACCEPT_BODY, "external_id": "e-1"},
                                key="same").status_code == 201


# ---------------------------------------------------------------- cursors and limits


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage!", "%%%", "====", "abc", _b64("-5"), _b64("1.5"), _b64("ten"),
    _b64(str(10**30)), _b64(str(2**63)), _b64("9" * 4000), "A" * 10_000,
])
@pytest.mark.parametrize("path", ["/tickets", "/units"])
def test_cursor_garbage(as_user, accept, cursor, path) -> None:
    accept()
    assert_error(as_user("hotline").get(path, cursor=cursor), 422, "invalid_cursor")


def test_cursor_round_trip(as_user, accept) -> None:
    for _ in range(3):
        accept()
    api = as_user("hotline")
    page = api.get("/tickets", limit=2).get_json()
    rest = api.get("/tickets", limit=2, cursor=page["next_cursor"]).get_json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "-1", "201", "abc", "1e3", "2.5", "9" * 5000, " "])
def test_limit_out_of_range(as_user, limit) -> None:
    body = assert_error(as_user("hotline").get("/tickets", limit=limit), 422, "invalid_input")
    assert body["details"]["field"] == "limit"


@pytest.mark.parametrize("limit", ["0", "1001", "x"])
def test_units_limit_out_of_range(as_user, limit) -> None:
    assert_error(as_user("hotline").get("/units", limit=limit), 422, "invalid_input")


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "lost"}, "status"), ({"urgency": "whenever"}, "urgency"),
    ({"type": "poem"}, "type"), ({"source": "pigeon"}, "source"), ({"q": "x" * 101}, "q"),
    ({"unit": "nowhere"}, "unit"),
])
def test_bad_filters(as_user, params, field) -> None:
    body = assert_error(as_user("hotline").get("/tickets", **params), 422, "invalid_input")
    assert body["details"]["field"] == field


# ---------------------------------------------------------------- every route, garbage in


GARBAGE_BODIES: list[tuple[bytes, str]] = [
    (b"{", "application/json"), (b"[]", "application/json"),
    (b'{"x": "' + b"y" * 50_000 + b'"}', "application/json"),
    (b"\x00\x01", "application/json"), (b"--x\r\n", "multipart/form-data; boundary=x"),
    (b"a=b&c", "application/x-www-form-urlencoded"),
]
GARBAGE_QUERY = {"limit": "x", "cursor": "!!", "unit": "\x00", "bbox": "a,b", "crs": "mars",
                 "level": "sky", "since": "yesterday", "status": "?"}


def _routes(app: Flask) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.build({a: "1" for a in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):  # type: ignore[operator]
            out.append((method, path))
    return out


def test_no_route_answers_garbage_with_a_500(app: Flask, world: World,
                                             as_user: Callable[[str], Api]) -> None:
    client = app.test_client()
    for user in ("hotline", "worker"):
        headers = as_user(user).headers()
        for method, path in _routes(app):
            attempts = [client.open(path, method=method, headers=headers,
                                    query_string=GARBAGE_QUERY)]
            if method != "GET":
                attempts += [client.open(path, method=method, data=data, content_type=ctype,
                                         headers=headers) for data, ctype in GARBAGE_BODIES]
            for resp in attempts:
                assert resp.status_code < 500, (user, method, path, resp.get_data()[:300])
                if resp.status_code >= 400:
                    assert_error(resp, resp.status_code)


def test_pages_take_garbage_too(app: Flask, world: World) -> None:
    from tests.conftest import PASSWORD

    client = app.test_client()
    assert client.post("/api/v1/session", json={"username": "county",
                                                "password": PASSWORD}).status_code == 200
    for query in ({"before": "9" * 30}, {"before": "-1"}, {"before": "x"}, {"status": "\x00"},
                  {"before": str(2**63)}):
        resp = client.get("/", query_string=query)
        assert resp.status_code == 200, (query, resp.get_data()[:300])
    for number in ("x" * 3000, "%00", "YH%00"):
        assert client.get(f"/tickets/{number}").status_code == 404


# ---------------------------------------------------------------- database errors


def _answer(app, exc):  # type: ignore[no-untyped-def]
    from server.api import _db_error

    with app.test_request_context("/api/v1/tickets", method="POST"):
        response, status = _db_error(exc)
        return status, response.get_json()


def test_database_errors_are_told_apart(app) -> None:  # type: ignore[no-untyped-def]
    """A lost race is 409, an unreachable database 503 (the phone retries), a bug stays 500."""
    import sqlite3

    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    race = IntegrityError("INSERT …", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert _answer(app, race) == (409, {"code": "concurrent_update",
                                        "message": "another change got there first; reload and try again"})
    locked = OperationalError("UPDATE …", {}, sqlite3.OperationalError("database is locked"))
    assert _answer(app, locked)[0] == 409
    down = OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file"))
    status, body = _answer(app, down)
    assert status == 503 and body["code"] == "database_unavailable"
    bug = ProgrammingError("SELECT nope", {}, sqlite3.ProgrammingError("no such column: nope"))
    status, body = _answer(app, bug)
    assert status == 500 and body["code"] == "internal_error"
