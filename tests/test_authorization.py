"""A test that fails when an operation can run without an authorization check.

Three layers, after CKAN's ``test_coding_standards.py::TestActionAuth``:

(a) by introspection of the ticket actions (:mod:`server.tickets.operations` and
    :mod:`server.tickets.routing_operations`) — every ``do_*`` has its
    ``check_*``, takes a :class:`Checked` first (so it cannot run unchecked), every
    ``check_*`` with an actor asks :mod:`permissions` *before anything else*, and every
    check is reachable from a route (ACTIONS or a dedicated one);
(b) by calling every check with an actor who can see the ticket but has no right to act,
    on a ticket where the action would otherwise be allowed: Forbidden, before any state,
    version or input check gets a chance to answer (and so to disclose) anything;
(c) every route under ``/api/v1`` answers 401 to a caller without credentials, except the
    few that are public on purpose.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from server.core.errors import Conflict, Forbidden, InvalidInput
from server.tickets import operations as ops
from server.tickets import permissions as perm
from server.tickets import routing_operations as rops
from tests.conftest import ACCEPT_BODY, Api, World

#: check_* that take no actor: run by jobs under the ticket lock, never from a user's request.
SYSTEM_CHECKS = {"check_escalate", "check_escalate_many"}
#: Batch pairs for system jobs (``check_*_many`` / ``do_*_many``): lists of what the pair takes.
BATCHES = {"do_escalate_many", "check_escalate_many"}
#: Routes that must answer without credentials. Logging out is idempotent: a phone whose
#: session already expired must not get an error for a no-op.
PUBLIC_ROUTES = {("POST", "/api/v1/session"), ("GET", "/api/v1/health"),
                 ("GET", "/api/v1/openapi.json"), ("DELETE", "/api/v1/session")}
API_SOURCES = [*sorted((Path(ops.__file__).parents[1] / "api").glob("*.py")),
               Path(ops.__file__).parents[1] / "pages.py"]


#: Every module of ticket actions: each check/do pair in them is held to the rules below.
ACTION_MODULES = (ops, rops)


def _public_functions(prefix: str) -> dict[str, Callable[..., Any]]:
    return {
        name: fn for module in ACTION_MODULES
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if name.startswith(prefix) and fn.__module__ == module.__name__
    }


# ---------------------------------------------------------------- (a) introspection


def test_every_do_has_its_check() -> None:
    checks, dos = _public_functions("check_"), _public_functions("do_")
    assert dos, "no do_* found: did the module move?"
    missing = sorted(n for n in dos if "check_" + n.removeprefix("do_") not in checks)
    assert not missing, f"do_* without a check_*: {missing}"
    orphans = sorted(n for n in checks if "do_" + n.removeprefix("check_") not in dos)
    assert not orphans, f"check_* without a do_*: {orphans}"


@pytest.mark.parametrize("name", sorted(_public_functions("do_")))
def test_do_takes_a_checked_first(name: str) -> None:
    fn = _public_functions("do_")[name]
    params = list(inspect.signature(fn, eval_str=True).parameters.values())
    assert params, f"{name} takes no arguments"
    first = params[0]
    if name in BATCHES:
        assert typing.get_type_hints(fn)[first.name] == list[ops.Checked], name
        return
    assert first.annotation is ops.Checked, \
        f"{name}'s first parameter must be annotated Checked, not {first.annotation!r}"
    assert first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
    assert typing.get_type_hints(fn)[first.name] is ops.Checked


@pytest.mark.parametrize("name", sorted(_public_functions("check_")))
def test_check_returns_checked(name: str) -> None:
    hints = typing.get_type_hints(_public_functions("check_")[name])
    if name in BATCHES:
        assert hints.get("return") == list[ops.Checked | None], name
        return
    assert hints.get("return") in (ops.Checked, ops.Checked | None), name


def _first_statement(fn: Callable[..., Any]) -> ast.stmt:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body[0]


@pytest.mark.parametrize("name", sorted(_public_functions("check_")))
def test_check_asks_permission_first(name: str) -> None:
    """The first thing a check does is ``_allow(perm.can_<verb>(actor, …), …)``."""
    fn = _public_functions("check_")[name]
    params = list(inspect.signature(fn).parameters)
    if name in SYSTEM_CHECKS:
        assert "actor" not in params, f"{name} takes an actor: it is not a system action"
        return
    assert params[0] == "actor", f"{name}: the actor comes first"
    stmt = _first_statement(fn)
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
        and call.func.id == "_allow", f"{name} does not start with _allow(...)"
    asked = call.args[0]
    assert isinstance(asked, ast.Call) and isinstance(asked.func, ast.Attribute) \
        and isinstance(asked.func.value, ast.Name) and asked.func.value.id == "perm" \
        and asked.func.attr.startswith("can_"), f"{name} must ask perm.can_*()"
    assert hasattr(perm, asked.func.attr), f"{name} asks perm.{asked.func.attr}, which is absent"
    assert isinstance(asked.args[0], ast.Name) and asked.args[0].id == "actor", \
        f"{name} must ask about the actor"


def test_system_checks_are_not_reachable_from_requests() -> None:
    """A check without an actor must never be called from a route or a page."""
    for path in API_SOURCES:
        source = path.read_text()
        for name in SYSTEM_CHECKS:
            assert not re.search(rf"\b{name}\b", source), f"{path.name} calls {name}"
    assert not {a.check.__name__ for a in ops.ACTIONS.values()} & SYSTEM_CHECKS


def test_every_action_is_registered_under_its_own_name() -> None:
    checks, dos = _public_functions("check_"), _public_functions("do_")
    for name, action in ops.ACTIONS.items():
        stem = name.replace("-", "_")
        assert action.name == name
        assert action.check is checks.get(f"check_{stem}"), name
        assert action.do is dos.get(f"do_{stem}"), name
        assert issubclass(action.body, ops.s.ActionBody), f"{name}: no base_version"


def test_every_user_check_is_reachable() -> None:
    """Each check is either an ACTION (POST /tickets/{n}/{name}) or called by a route."""
    routed = set()
    for path in API_SOURCES:
        routed |= set(re.findall(r"\br?ops\.(check_\w+)\b", path.read_text()))
    registered = {a.check.__name__ for a in ops.ACTIONS.values()}
    unreachable = sorted(set(_public_functions("check_")) - routed - registered - SYSTEM_CHECKS)
    assert not unreachable, f"checks no route calls: {unreachable}"


def test_every_action_answers_on_its_route(as_user: Callable[[str], Api]) -> None:
    """The route knows every action name (an unknown ticket, not an unknown action)."""
    api = as_user("hotline")
    for name in ops.ACTIONS:
        resp = api.post(f"/tickets/YH-NO-SUCH/{name}", {})
        assert resp.get_json()["code"] != "unknown_action", name
        assert resp.status_code in (404, 422), (name, resp.get_json())
    assert api.post("/tickets/YH-NO-SUCH/destroy", {}).get_json()["code"] == "unknown_action"


# ---------------------------------------------------------------- (b) Forbidden comes first

#: action → (state where it is allowed, an allowed actor, actors who can see but may not,
#: a body that passes the schema but fails a later check, a state where it is not allowed).
FORBIDDEN: dict[str, tuple[str, str, tuple[str, ...], dict[str, Any], str]] = {
    "dispatch": ("assigned", "township", ("admin", "worker", "backup"),
                 {"unit": "999999"}, "closed"),
    "sign": ("assigned", "worker", ("admin", "backup", "township", "contact"),
             {"base_version": 999}, "closed"),
    "correct-location": ("in_progress", "worker", ("admin", "backup"),
                         {"address": "浑河湾社区北门", "reason": "现场核实", "base_version": 999},
                         "closed"),
    "return": ("assigned", "worker", ("admin", "backup", "township"),
               {"reason": "不属于本网格", "base_version": 999}, "closed"),
    "check-in": ("in_progress", "worker", ("admin", "backup", "county"),
                 {"lng": 123.43, "lat": 41.74, "base_version": 999}, "closed"),
    "reply": ("on_site", "worker", ("admin", "backup", "township"),
              {"result": "已处理", "resolution": "resolved", "photos": ["nope"]}, "closed"),
    "approve": ("replied", "township", ("admin", "contact", "worker", "backup"),
                {"base_version": 999}, "in_progress"),
    "reject": ("replied", "township", ("admin", "contact", "worker"),
               {"reason": "照片不清楚", "base_version": 999}, "closed"),
    "request-extension": ("in_progress", "worker", ("admin", "backup", "county"),
                          {"days": 2, "reason": "等待配件", "base_version": 999}, "closed"),
    "decide-extension": ("pending_extension", "township", ("admin", "contact", "worker"),
                         {"approve": True, "days": 10}, "closed"),
    "urge": ("in_progress", "township", ("admin", "contact", "worker", "backup"),
             {"note": "快", "base_version": 999}, "closed"),
    "follow-up": ("closed", "hotline", ("admin", "township", "contact", "worker"),
                  {"reached": False, "base_version": 999}, "in_progress"),
    "reopen": ("closed", "county", ("admin", "township", "contact", "worker", "backup"),
               {"reason": "仍未修好", "base_version": 999}, "in_progress"),
}
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "dispatch": {"worker": "backup"}, "sign": {}, "return": {"reason": "不属于本网格"},
    "correct-location": {"address": "浑河湾社区北门", "reason": "现场核实"},
    "check-in": {"lng": 123.43, "lat": 41.74}, "reply": {"result": "已处理",
                                                        "resolution": "resolved"},
    "approve": {}, "reject": {"reason": "照片不清楚"},
    "request-extension": {"days": 2, "reason": "等待配件"},
    "decide-extension": {"approve": True}, "urge": {"note": "快"},
    "follow-up": {"reached": False}, "reopen": {"reason": "仍未修好"},
}


def test_the_table_covers_every_action() -> None:
    assert set(FORBIDDEN) == set(ops.ACTIONS) == set(GOOD_BODIES)


@pytest.fixture
def ticket_in(walk: Callable[[str], str], as_user: Callable[[str], Api]) -> Callable[[str], str]:
    def _make(state: str) -> str:
        if state == "pending_extension":
            number = walk("in_progress")
            resp = as_user("worker").post(f"/tickets/{number}/request-extension",
                                          {"days": 3, "reason": "等待配件"})
            assert resp.status_code == 200
            return number
        return walk(state)

    return _make


@contextmanager
def acting(app: Flask, world: World) -> Iterator[Callable[[str, str], tuple[Any, Any]]]:
    """Load (actor, ticket) inside an app context, as a route would; nothing is committed."""
    from hierarchy.models import User
    from server.core.db import db
    from server.tickets.queries import get_visible_ticket

    def load(username: str, number: str) -> tuple[Any, Any]:
        db.session.rollback()
        actor = db.session.get(User, world.users[username])
        return actor, get_visible_ticket(actor, number, lock=True)  # must be visible

    with app.app_context():
        try:
            yield load
        finally:
            db.session.rollback()


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_forbidden_before_state_and_input(app, world, ticket_in, subtests, name) -> None:
    state, allowed, refused, bad_body, wrong_state = FORBIDDEN[name]
    action = ops.ACTIONS[name]
    good, bad = action.body.model_validate(GOOD_BODIES[name]), action.body.model_validate(bad_body)
    number, closed = ticket_in(state), ticket_in(wrong_state)
    with acting(app, world) as load:
        # The table is right: the allowed actor passes with the good body, and the bad body
        # and the wrong state are caught — by the checks that must come after permission.
        checked = action.check(*load(allowed, number), good)
        assert isinstance(checked, ops.Checked) and checked.action == name.replace("-", "_")
        with pytest.raises((InvalidInput, Conflict)):
            action.check(*load(allowed, number), bad)
        for actor in refused:
            with subtests.test(actor=actor):
                with pytest.raises(Forbidden):
                    action.check(*load(actor, number), good)
                with pytest.raises(Forbidden):
                    action.check(*load(actor, number), bad)
                with pytest.raises(Forbidden):
                    action.check(*load(actor, closed), good)


def test_accept_forbidden_before_input(app, world) -> None:
    from hierarchy.models import User
    from server.core.db import db
    from server.tickets import schemas

    good = schemas.AcceptBody.model_validate(ACCEPT_BODY)
    nowhere = schemas.AcceptBody.model_validate({**ACCEPT_BODY, "location": None, "address": None})
    with app.app_context():
        hotline = db.session.get(User, world.users["hotline"])
        assert ops.check_accept(hotline, good).action == "accept"
        with pytest.raises(InvalidInput):
            ops.check_accept(hotline, nowhere)
        for name in ("admin", "worker"):
            actor = db.session.get(User, world.users[name])
            with pytest.raises(Forbidden):
                ops.check_accept(actor, good)
            with pytest.raises(Forbidden):
                ops.check_accept(actor, nowhere)
        db.session.rollback()


def test_upload_photo_forbidden_before_state(app, world, walk) -> None:
    open_, closed = walk("in_progress"), walk("closed")
    with acting(app, world) as load:
        assert ops.check_upload_photo(*load("worker", open_)).action == "photo"
        with pytest.raises(Conflict):
            ops.check_upload_photo(*load("worker", closed))
        for name in ("admin", "backup", "township"):
            with pytest.raises(Forbidden):
                ops.check_upload_photo(*load(name, open_))
            with pytest.raises(Forbidden):
                ops.check_upload_photo(*load(name, closed))


def test_refusals_through_the_api_disclose_nothing(as_user, ticket_in) -> None:
    """A 403 carries no ``current`` ticket, even where the state or the body is also wrong."""
    for name, (state, _allowed, refused, bad_body, _wrong) in FORBIDDEN.items():
        number = ticket_in(state)
        for body in (GOOD_BODIES[name], bad_body):
            resp = as_user(refused[0]).post(f"/tickets/{number}/{name}", body)
            assert resp.status_code == 403, (name, resp.get_json())
            assert set(resp.get_json()) == {"code", "message"}, (name, resp.get_json())


# ---------------------------------------------------------------- (c) 401 without credentials

PLACEHOLDERS = {"number": "YH0000000000001", "action_name": "sign", "photo_id": "x",
                "code": "210000", "id": "1"}


def _api_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        values = {arg: PLACEHOLDERS.get(arg, "1") for arg in rule.arguments}
        path = rule.build(values, append_unknown=False)[1]  # type: ignore[union-attr]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):  # type: ignore[operator]
            routes.append((method, path, rule.rule))
    return routes  # type: ignore[return-value]


def test_api_routes_need_credentials(app: Flask, world: World) -> None:
    client = app.test_client()
    routes = _api_routes(app)
    assert len(routes) > 10
    seen_public = set()
    for method, path, rule in routes:
        if (method, rule) in PUBLIC_ROUTES:
            seen_public.add((method, rule))
            continue
        resp = client.open(path, method=method, json={})
        assert resp.status_code == 401, (method, rule, resp.status_code, resp.get_data()[:200])
        assert resp.is_json and resp.get_json()["code"] == "not_authenticated", (method, rule)
        # a bearer token that is not one, and a cookie-less form post, are no better
        resp = client.open(path, method=method, json={},
                           headers={"Authorization": "Bearer yh_not-a-real-token"})
        assert resp.status_code == 401, (method, rule, "bad token")
        resp = client.open(path, method=method, data={"file": (b"", "x.jpg")},
                           content_type="multipart/form-data")
        assert resp.status_code == 401, (method, rule, "multipart")
    assert seen_public == PUBLIC_ROUTES, "a public route was renamed: update PUBLIC_ROUTES"


def test_public_routes_answer_without_credentials(app: Flask, world: World) -> None:
    client = app.test_client()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    resp = client.post("/api/v1/session", json={"username": "hotline", "password": "wrong"})
    assert resp.status_code == 401 and resp.get_json()["code"] == "login_failed"
    assert client.delete("/api/v1/session").status_code == 200


def test_a_revoked_token_is_refused(app: Flask, world: World, client) -> None:
    from hierarchy.models import ApiToken
    from server.core.db import db, utcnow

    token = world.tokens["hotline"]
    assert client.get("/api/v1/tickets",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with app.app_context():
        db.session.execute(sa.update(ApiToken).where(ApiToken.user_id == world.users["hotline"])
                           .values(revoked_at=utcnow()))
        db.session.commit()
    resp = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
