"""The steering desk (``/station``) through the Flask test client: the queue's tabs hold the
right tickets, dispatch / reassign / review / re-dispatch go through the real operations, bad
input reads as a message (never a 500), and the queue pages cost a fixed number of statements
whatever the number of tickets (no N+1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Api, count_queries


def login(app: Flask, username: str) -> FlaskClient:
    """A browser-like client with its own cookie jar, logged in through the form."""
    client = app.test_client()
    resp = client.post("/login", data={"username": username, "password": PASSWORD})
    assert resp.status_code == 302, resp.data[:300]
    return client


def csrf(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return str(session["csrf"])


def post(client: FlaskClient, path: str, **form: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf(client), **form})


def page_text(resp: Any) -> str:
    return resp.get_data(as_text=True)


def tab_count(html: str, label: str) -> int:
    match = re.search(rf"{label} <b class=\"count\">(\d+)</b>", html)
    assert match, f"no tab {label}"
    return int(match.group(1))


def at_township(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
                **body: Any) -> str:
    """A ticket sent down by the hotline and the county to 浑河湾街道 (the station's desk)."""
    number = accept(**body)["number"]
    for who, target in (("hotline", {"unit": "210102"}), ("county", {"unit": "210102001"})):
        resp = as_user(who).post(f"/tickets/{number}/dispatch", target)
        assert resp.status_code == 200, resp.get_json()
    return number


def test_queue_tabs_hold_the_right_tickets(app: Flask, world: Any, as_user: Callable[[str], Api],
                                           accept: Callable[..., dict[str, Any]],
                                           walk: Callable[[str], str]) -> None:
    waiting = at_township(as_user, accept, title="等待派发的工单")
    returned = at_township(as_user, accept, title="被退回的工单")
    assert as_user("township").post(f"/tickets/{returned}/dispatch",
                                    {"grid": "G-HHW-01"}).status_code == 200
    assert as_user("worker").post(f"/tickets/{returned}/return",
                                  {"reason": "不在本网格，在长白岛"}).status_code == 200
    replied = walk("replied")
    working = walk("in_progress")

    client = login(app, "township")
    html = page_text(client.get("/station"))
    assert waiting in html and returned not in html and replied not in html
    assert tab_count(html, "待派发") == 1
    assert tab_count(html, "退回待重派") == 1
    assert tab_count(html, "待审核") == 1
    assert tab_count(html, "下辖在办") == 1

    html = page_text(client.get("/station?tab=returned"))
    assert returned in html and waiting not in html
    assert "不在本网格，在长白岛" in html, "the return's reason is on the queue"
    html = page_text(client.get("/station?tab=review"))
    assert replied in html and working not in html
    html = page_text(client.get("/station?tab=below"))
    assert working in html and replied not in html

    # The county sees the replied ticket for review too (it is above the village), but the
    # station's waiting ticket is not waiting at the county.
    county = login(app, "county")
    html = page_text(county.get("/station"))
    assert tab_count(html, "待派发") == 0
    assert tab_count(html, "待审核") == 1
    # Another township sees none of it.
    other = page_text(login(app, "township2").get("/station?tab=below"))
    assert working not in other and tab_count(other, "待审核") == 0


def test_dispatch_to_a_grid_and_to_a_worker_shows_the_load(
        app: Flask, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], walk: Callable[[str], str]) -> None:
    walk("in_progress")  # one open ticket already with worker in G-HHW-01
    # Two more by address alone: they match no grid, so they add to no grid's load yet.
    first = at_township(as_user, accept, location=None, address="和平区浑河湾街道")
    second = at_township(as_user, accept, location=None, address="和平区浑河湾街道")
    client = login(app, "township")
    html = page_text(client.get(f"/station/tickets/{first}"))
    assert "浑河湾第一网格" in html and "值班网格员 worker" in html
    # G-HHW-01 carries the walked ticket: its load reads 1; worker2's grid reads 0.
    grid_row = re.search(r'value="grid:G-HHW-01".*?在办 (\d+)', html, re.S)
    assert grid_row and grid_row.group(1) == "1"
    worker_row = re.search(r'value="worker:worker2".*?在办 (\d+)', html, re.S)
    assert worker_row and worker_row.group(1) == "0"

    resp = post(client, f"/station/tickets/{first}/dispatch", target="grid:G-HHW-01",
                note="请今天到场")
    assert resp.status_code == 302 and "/station" in resp.headers["Location"]
    got = as_user("township").get(f"/tickets/{first}").get_json()
    assert got["grid"] == "G-HHW-01" and got["assignee"] == "worker"

    resp = post(client, f"/station/tickets/{second}/dispatch", target="worker:worker2")
    assert resp.status_code == 302
    got = as_user("township").get(f"/tickets/{second}").get_json()
    assert got["assignee"] == "worker2" and got["status"] == "assigned"

    # Reassign: the first ticket moves from worker to backup; the load follows.
    html = page_text(client.get(f"/station/tickets/{first}"))
    assert "改派" in html and "当前承办" in html
    resp = post(client, f"/station/tickets/{first}/dispatch", target="worker:backup")
    assert resp.status_code == 302
    assert as_user("township").get(f"/tickets/{first}").get_json()["assignee"] == "backup"
    html = page_text(client.get(f"/station/tickets/{second}"))
    backup_row = re.search(r'value="worker:backup".*?在办 (\d+)', html, re.S)
    assert backup_row and backup_row.group(1) == "1"


def test_review_approve_and_reject(app: Flask, world: Any, as_user: Callable[[str], Api],
                                   walk: Callable[[str], str]) -> None:
    approve_me, reject_me = walk("replied"), walk("replied")
    client = login(app, "township")
    html = page_text(client.get(f"/station/tickets/{approve_me}"))
    for heading in ("原始反映", "到场打卡", "办理反馈"):
        assert heading in html
    assert "已更换灯泡，路灯恢复正常" in html and "123.43060" in html, \
        "the reply and the check-in position are side by side"
    resp = post(client, f"/station/tickets/{approve_me}/approve")
    assert resp.status_code == 302
    assert as_user("township").get(f"/tickets/{approve_me}").get_json()["status"] == "closed"

    # A reject without a reason is refused with a message, and changes nothing.
    resp = post(client, f"/station/tickets/{reject_me}/reject", reason="  ")
    assert resp.status_code == 302
    html = page_text(client.get(resp.headers["Location"]))
    assert "请填写退回重办的原因" in html
    assert as_user("township").get(f"/tickets/{reject_me}").get_json()["status"] == "replied"
    resp = post(client, f"/station/tickets/{reject_me}/reject", reason="照片看不出已修复")
    assert resp.status_code == 302
    assert as_user("township").get(f"/tickets/{reject_me}").get_json()["status"] == "in_progress"
    events = as_user("township").get(f"/tickets/{reject_me}/events").get_json()["items"]
    assert events[-1]["kind"] == "reject" and events[-1]["data"]["reason"] == "照片看不出已修复"


def test_returned_ticket_is_redispatched(app: Flask, world: Any, as_user: Callable[[str], Api],
                                         accept: Callable[..., dict[str, Any]]) -> None:
    number = at_township(as_user, accept)
    assert as_user("township").post(f"/tickets/{number}/dispatch",
                                    {"grid": "G-HHW-01"}).status_code == 200
    assert as_user("worker").post(f"/tickets/{number}/return",
                                  {"reason": "位置在长白岛社区"}).status_code == 200
    client = login(app, "township")
    html = page_text(client.get(f"/station/tickets/{number}"))
    assert "已退回本单位" in html and "位置在长白岛社区" in html
    resp = post(client, f"/station/tickets/{number}/dispatch", target="grid:G-CBD-01",
                tab="returned")
    assert resp.status_code == 302
    got = as_user("township").get(f"/tickets/{number}").get_json()
    assert got["grid"] == "G-CBD-01" and got["assignee"] == "worker2"
    html = page_text(client.get("/station?tab=returned"))
    assert tab_count(html, "退回待重派") == 0


def test_stale_page_and_bad_input_read_as_messages(app: Flask, world: Any,
                                                   as_user: Callable[[str], Api],
                                                   accept: Callable[..., dict[str, Any]]) -> None:
    number = at_township(as_user, accept)
    client = login(app, "township")
    html = page_text(client.get(f"/station/tickets/{number}"))
    version = re.search(r'name="base_version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    # Someone else dispatches meanwhile: the page's version is stale → a message, no change.
    assert as_user("county").post(f"/tickets/{number}/dispatch",
                                  {"grid": "G-CBD-01"}).status_code == 200
    resp = post(client, f"/station/tickets/{number}/dispatch", target="grid:G-HHW-01",
                base_version=version)
    assert resp.status_code == 302
    html = page_text(client.get(resp.headers["Location"]))
    assert "工单已被他人更新" in html
    assert as_user("township").get(f"/tickets/{number}").get_json()["grid"] == "G-CBD-01"

    for target in ("", "grid:", "planet:mars", "grid:NO-SUCH", "worker:worker3", "unit:210103"):
        resp = post(client, f"/station/tickets/{number}/dispatch", target=target)
        assert resp.status_code == 302, target
        assert "role=\"alert\"" in page_text(client.get(resp.headers["Location"])), target
    for path in ("/station?tab=nonsense", "/station?before=99999999999999999999999",
                 "/station?before=-5", "/station/tickets/YH-NOPE", "/station/tickets/%00"):
        resp = client.get(path)
        assert resp.status_code in (200, 404), (path, resp.status_code)
    # Without the CSRF token nothing happens.
    resp = client.post(f"/station/tickets/{number}/dispatch", data={"target": "grid:G-HHW-01"})
    assert resp.status_code in (302, 403)
    assert as_user("township").get(f"/tickets/{number}").get_json()["grid"] == "G-CBD-01"


def test_desk_is_for_steering_roles(app: Flask, world: Any) -> None:
    assert login(app, "worker").get("/station").status_code == 302
    assert login(app, "admin").get("/station").status_code == 403
    assert app.test_client().get("/station").status_code == 302  # to the login page


@pytest.mark.parametrize("tab", ["dispatch", "returned", "review", "below"])
def test_queue_statements_do_not_grow_with_the_queue(app: Flask, world: Any, tab: str,
                                                     as_user: Callable[[str], Api],
                                                     accept: Callable[..., dict[str, Any]],
                                                     walk: Callable[[str], str]) -> None:
    def make(n: int) -> None:
        for _ in range(n):
            if tab == "review":
                walk("replied")
            elif tab == "below":
                walk("in_progress")
            else:
                number = at_township(as_user, accept)
                if tab == "returned":
                    as_user("township").post(f"/tickets/{number}/dispatch", {"grid": "G-HHW-01"})
                    as_user("worker").post(f"/tickets/{number}/return", {"reason": "不是本网格"})

    client = login(app, "township")
    make(2)
    client.get(f"/station?tab={tab}")  # warm caches (boundaries, tokens)
    with count_queries(app) as few:
        assert client.get(f"/station?tab={tab}").status_code == 200
    make(6)
    with count_queries(app) as many:
        html = page_text(client.get(f"/station?tab={tab}"))
    assert html.count("<tr class=\"urgency-") == 8
    assert len(many) == len(few), (len(few), len(many))
    assert len(many) <= 12, many


def test_workbench_statements_do_not_grow_with_grids_and_workers(
        app: Flask, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]]) -> None:
    from grids.models import Grid, GridMember
    from hierarchy.models import Role
    from hierarchy.operations import do_create_user
    from server.core.db import db

    number = at_township(as_user, accept)
    client = login(app, "township")
    client.get(f"/station/tickets/{number}")
    with count_queries(app) as few:
        assert client.get(f"/station/tickets/{number}").status_code == 200
    with app.app_context():
        from hierarchy.models import Unit

        village = db.session.get(Unit, world.units["210102001002"])
        for i in range(8):
            user = do_create_user(None, username=f"extra{i}", display_name=f"新网格员{i}",
                                  role=Role.grid_worker, unit=village, password=PASSWORD)
            grid = Grid(code=f"G-X-{i}", name=f"新网格{i}", unit=village)
            db.session.add(grid)
            db.session.add(GridMember(grid=grid, user=user, position=0))
        db.session.commit()
    with count_queries(app) as many:
        html = page_text(client.get(f"/station/tickets/{number}"))
    assert "新网格7" in html and "新网格员7" in html
    assert len(many) == len(few), (len(few), len(many))


def test_a_request_begun_before_login_does_not_log_the_user_out(app: Flask, world: Any) -> None:
    """A browser sends requests of its own (the favicon, a page still loading) while a person
    logs in. When such an anonymous request's answer arrives after the login's, any session
    cookie it carries replaces the logged-in one. So an anonymous answer — an error page,
    the login page — must not set a session cookie; only logging in does."""
    browser = app.test_client()
    for path in ("/favicon.ico", "/no-such-page", "/login", "/api/v1/health", "/api/v1/nope",
                 "/app/"):
        resp = browser.get(path)
        assert resp.status_code < 500
        assert not resp.headers.getlist("Set-Cookie"), (path, resp.headers.getlist("Set-Cookie"))
    login = browser.post("/login", data={"username": "township", "password": PASSWORD})
    assert login.status_code == 302 and login.headers.getlist("Set-Cookie")
    page = browser.get("/station")
    assert page.status_code == 200 and 'name="csrf-token"' in page.get_data(as_text=True)
