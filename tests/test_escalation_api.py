"""``GET /api/v1/escalations``, acknowledging and urging, the supervisors' board page, rules
and calendar endpoints, notifications, and the report with its Excel export."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest

from escalation.models import Escalation
from tests.conftest import PASSWORD
from tests.test_escalation_support import accept_at, act_at, events, rows, scan, seed, sh


@pytest.fixture
def escalated(app, world) -> str:  # type: ignore[no-untyped-def]
    """A ticket left untouched by its worker until it reached the county's board."""
    seed(app)
    number = accept_at(app, world, sh(2025, 3, 3, 10))
    act_at(app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"}, sh(2025, 3, 3, 10, 5))
    scan(app, sh(2025, 3, 4, 9))  # due soon
    for day in (4, 5, 6):
        scan(app, sh(2025, 3, day, 10, 6))
    return number


def test_escalations_visible_to_the_caller(as_user, escalated) -> None:  # type: ignore[no-untyped-def]
    body = as_user("county").get("/escalations").get_json()
    assert len(body["items"]) == 1
    item = body["items"][0]
    assert item["ticket"] == escalated and item["clock"] == "sign"
    assert item["deadline"] == sh(2025, 3, 4, 10, 5).isoformat()
    assert item["level"] == "county" and item["unit"] == "210102" and item["rung"] == 3
    assert item["escalated_at"] == sh(2025, 3, 6, 10, 6).isoformat()
    assert item["acknowledged"] is False
    assert item["township"] == "210102001" and item["grid"] == "G-HHW-01"
    assert body["next_cursor"] is None
    # Another county sees nothing; the worker sees his own ticket's item.
    assert as_user("county2").get("/escalations").get_json()["items"] == []
    assert len(as_user("worker").get("/escalations").get_json()["items"]) == 1
    # All states: the superseded lower rungs too.
    assert len(as_user("county").get("/escalations", state="all").get_json()["items"]) == 3
    assert as_user("county").get("/escalations", state="nope").status_code == 422
    assert as_user("county").get("/escalations", clock="x").status_code == 422
    assert as_user("county").get("/escalations", acknowledged="maybe").status_code == 422
    assert as_user("county").get("/escalations", cursor="%%%").status_code == 422


def test_acknowledge(as_user, escalated) -> None:  # type: ignore[no-untyped-def]
    item_id = as_user("county").get("/escalations").get_json()["items"][0]["id"]
    assert as_user("county2").post(f"/escalations/{item_id}/acknowledge").status_code == 404
    assert as_user("worker").post(f"/escalations/{item_id}/acknowledge").status_code == 403
    first = as_user("county").post(f"/escalations/{item_id}/acknowledge", {"note": "已知悉"},
                                   key="ack-1")
    assert first.status_code == 200
    assert first.get_json()["acknowledged"] is True
    assert first.get_json()["acknowledged_by"] == "county"
    again = as_user("county").post(f"/escalations/{item_id}/acknowledge", {"note": "已知悉"},
                                   key="ack-1")
    assert again.headers.get("Idempotent-Replayed") == "true"
    listed = as_user("county").get("/escalations", acknowledged="true").get_json()["items"]
    assert [i["id"] for i in listed] == [item_id]
    assert as_user("county").get("/escalations", acknowledged="false").get_json()["items"] == []
    assert as_user("county").post("/escalations/999999/acknowledge").status_code == 404


def test_urging_the_ticket_marks_its_escalation(as_user, escalated) -> None:  # type: ignore[no-untyped-def]
    resp = as_user("county").post(f"/tickets/{escalated}/urge", {"note": "请今日内签收"})
    assert resp.status_code == 200
    item = as_user("county").get("/escalations").get_json()["items"][0]
    assert item["urge_count"] == 1 and item["urged_at"] is not None


def test_the_county_board_page(client, app, world, escalated) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/login", data={"username": "county", "password": PASSWORD})
    assert resp.status_code == 302
    page = client.get("/board")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert escalated in html and "升级督办" in html and "浑河湾街道" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    item_id = rows(app, Escalation, resolved_at=None)[0]["id"]
    # Without the CSRF token: refused.
    assert client.post(f"/board/escalations/{item_id}/acknowledge").status_code == 403
    resp = client.post(f"/board/escalations/{item_id}/urge",
                       data={"csrf_token": token, "note": "请立即处理"})
    assert resp.status_code == 302
    urged = events(app, escalated, "urge")
    assert urged and urged[-1]["data"]["note"] == "请立即处理" and urged[-1]["actor"] == "county"
    item = rows(app, Escalation, id=item_id)[0]
    assert item["acknowledged_at"] is not None and item["urge_count"] == 1
    # Reassign from the board to the backup worker.
    resp = client.post(f"/board/escalations/{item_id}/reassign",
                       data={"csrf_token": token, "kind": "worker", "target": "backup"})
    assert resp.status_code == 302
    dispatched = events(app, escalated, "dispatch")[-1]["data"]
    assert dispatched["worker"] == "backup" and dispatched["note"] == "督办改派"
    assert rows(app, Escalation, id=item_id)[0]["resolution"] == "dispatched"
    # A station user sees the board; a grid worker is sent to the ticket list.
    client.post("/logout")
    client.post("/login", data={"username": "worker", "password": PASSWORD})
    assert client.get("/board").status_code == 302


def test_the_board_decides_a_pending_extension(client, app, world) -> None:  # type: ignore[no-untyped-def]
    """Board actions happen now (no frozen time): the story is set in the recent past."""
    from datetime import timedelta

    from server.core.db import utcnow

    seed(app)
    start = utcnow() - timedelta(days=12)
    number = accept_at(app, world, start)
    act_at(app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"},
           start + timedelta(minutes=5))
    act_at(app, world, number, "worker", "sign", {}, start + timedelta(hours=1))
    scan(app, utcnow() - timedelta(minutes=2))  # the reply deadline passed: escalated
    act_at(app, world, number, "worker", "request-extension",
           {"days": 10, "reason": "需等待配件"}, utcnow() - timedelta(minutes=1))
    client.post("/login", data={"username": "township", "password": PASSWORD})
    html = client.get("/board").get_data(as_text=True)
    assert "批准延期 10 个工作日" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    item_id = next(i for i in rows(app, Escalation, resolved_at=None)
                   if i["clock"] == "reply")["id"]
    resp = client.post(f"/board/escalations/{item_id}/extend",
                       data={"csrf_token": token, "approve": "1"})
    assert resp.status_code == 302
    decided = events(app, number, "decide_extension")[-1]["data"]
    assert decided["approve"] is True and decided["days"] == 10
    assert rows(app, Escalation, id=item_id)[0]["resolution"] == "extended"


def test_notifications_endpoint(as_user, escalated) -> None:  # type: ignore[no-untyped-def]
    mine = as_user("worker").get("/notifications").get_json()["items"]
    # The assignment itself is a notice too (sent at once: issue 4, Web Push).
    assert {n["kind"] for n in mine} == {"assigned", "due_soon", "overdue"}
    assert all(n["ticket"] == escalated for n in mine)
    resp = as_user("worker").post("/notifications/read", {"ids": [mine[0]["id"]]})
    assert resp.get_json() == {"read": 1}
    assert len(as_user("worker").get("/notifications", unread="true").get_json()["items"]) == 2
    assert as_user("worker").post("/notifications/read", {"ids": "x"}).status_code == 422
    # Someone else's notifications cannot be marked.
    assert as_user("county").post("/notifications/read",
                                  {"ids": [mine[1]["id"]]}).get_json() == {"read": 0}
    assert as_user("county").get("/notifications").get_json()["items"][0]["kind"] == "escalated"


def test_rules_and_calendar_endpoints(as_user, app) -> None:  # type: ignore[no-untyped-def]
    seed(app)
    rules = as_user("county").get("/sla-rules").get_json()["items"]
    assert {r["code"] for r in rules} >= {"default.sign", "default.reply"}
    assert as_user("worker").get("/sla-rules").status_code == 403
    tighter = {"code": "hp.sign", "name": "和平区：4小时内签收", "clock": "sign",
               "scope_unit": "210102", "amount": 4, "unit": "hours", "repeat_amount": 2,
               "repeat_unit": "hours"}
    resp = as_user("county").post("/sla-rules", tighter)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["scope_unit"] == "210102"
    looser = {**tighter, "code": "hp.sign2", "amount": 3, "unit": "working_days"}
    assert as_user("county").post("/sla-rules", looser).get_json()["code"] == \
        "rule_looser_than_above"
    assert as_user("county").post("/sla-rules", {**tighter, "amount": 0}).status_code == 422
    assert as_user("county").post("/sla-rules", {**tighter, "scope_unit": None}).status_code \
        == 403
    assert as_user("county").post("/sla-rules/hp.sign/disable").status_code == 200
    assert as_user("county").post("/sla-rules/hp.sign/disable").status_code == 409
    assert as_user("county").post("/sla-rules/hp.sign/explode").status_code == 404
    assert as_user("county").post("/sla-rules/nope/enable").status_code == 404

    cal = as_user("admin").get("/calendar", year=2025).get_json()
    assert cal["entered"] is True
    assert {"day": "2025-01-26", "is_workday": True, "name": "Spring Festival",
            "source": "package"} in cal["days"]
    assert as_user("admin").get("/calendar", year=2027).get_json()["entered"] is False
    year = {"year": 2027, "holidays": ["2027-01-01"], "workdays": []}
    assert as_user("county").post("/calendar/years", year).status_code == 403
    assert as_user("admin").post("/calendar/years", year).status_code == 200
    assert as_user("admin").get("/calendar", year=2027).get_json()["entered"] is True
    day = {"day": "2027-05-06", "is_workday": False, "name": "example"}
    assert as_user("admin").post("/calendar/days", day).status_code == 200
    bad = {"year": 2027, "holidays": ["2026-01-01"]}
    assert as_user("admin").post("/calendar/years", bad).status_code == 422
    assert as_user("admin").post("/calendar/days", {"day": "2031-01-01",
                                                     "is_workday": False}).status_code == 409


def test_the_report_and_its_excel_export(client, as_user, app, world, escalated) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook

    act_at(app, world, escalated, "worker", "sign", {}, sh(2025, 3, 6, 11))
    act_at(app, world, escalated, "worker", "reply", {"result": "已修复", "resolution": "resolved"},
           sh(2025, 3, 7, 11))
    act_at(app, world, escalated, "township", "approve", {}, sh(2025, 3, 7, 12))
    on_time = accept_at(app, world, sh(2025, 3, 3, 11))
    act_at(app, world, on_time, "hotline", "dispatch", {"grid": "G-HHW-01"}, sh(2025, 3, 3, 11, 5))
    act_at(app, world, on_time, "worker", "sign", {}, sh(2025, 3, 3, 12))

    report = as_user("county").get("/escalations/report", **{"from": "2025-03-01",
                                                              "to": "2025-03-31"}).get_json()
    total = report["total"]
    assert total["accepted"] == 2
    assert total["sign"] == {"total": 2, "on_time": 1, "rate": 0.5}
    assert total["reply"] == {"total": 1, "on_time": 1, "rate": 1.0}
    assert total["close"] == {"total": 1, "on_time": 1, "rate": 1.0}
    assert total["overdue"] == 1 and total["escalations"] == 3
    assert total["repeat_escalations"] == 2 and total["tickets_escalated_repeatedly"] == 1
    # Signed 2025-03-06 11:00, due 2025-03-04 10:05: 2 days 55 minutes late.
    assert total["overdue_minutes"] == 2 * 1440 + 55
    towns = {r["key"]: r for r in report["townships"]}
    assert towns["210102001"]["escalations"] == 3
    assert {r["key"] for r in report["grids"]} == {"G-HHW-01"}
    assert [w["key"] for w in report["weeks"]] == ["2025-W10"]
    # Reproducible: the same figures twice, from the events alone.
    again = as_user("county").get("/escalations/report", **{"from": "2025-03-01",
                                                             "to": "2025-03-31"}).get_json()
    assert again == report
    assert as_user("county").get("/escalations/report", **{"from": "x"}).status_code == 422
    assert as_user("county2").get("/escalations/report", **{
        "from": "2025-03-01", "to": "2025-03-31"}).get_json()["total"]["accepted"] == 0
    assert as_user("worker").get("/escalations/report").status_code == 403

    client.post("/login", data={"username": "county", "password": PASSWORD})
    page = client.get("/board/report?from=2025-03-01&to=2025-03-31")
    assert page.status_code == 200 and "浑河湾街道" in page.get_data(as_text=True)
    xlsx = client.get("/board/report.xlsx?from=2025-03-01&to=2025-03-31")
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.data))
    assert book.sheetnames == ["汇总", "乡镇", "网格", "周趋势", "说明"]
    summary = book["汇总"]
    header = [c.value for c in summary[1]]
    values = dict(zip(header, [c.value for c in summary[2]], strict=True))
    assert values["受理"] == 2 and values["签收按时率"] == 0.5 and values["升级次数"] == 3
    assert date.today()  # the workbook opened: openpyxl round-trip works
