"""The township station's desk in a real browser: dispatch to a grid and to a worker seeing
their load, review a closure (approve and reject) with the reply's photos beside the check-in
and the report, re-dispatch a returned ticket — and the desk at 320 px and with an enlarged
font, without sideways scrolling.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, IN_CI
from tests.browser.test_pages import log_in
from tests.conftest import Api
from tests.test_photos import exif_jpeg

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not IN_CI,
                       reason=f"{CHROMIUM} is missing (apt-get install chromium, "
                              "or set YIHAO_CHROMIUM)"),
]

TABLET = {"width": 1024, "height": 768}
NARROW = {"width": 320, "height": 640}


def at_township(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
                **body: Any) -> str:
    number = accept(**body)["number"]
    for who, target in (("hotline", {"unit": "210102"}), ("county", {"unit": "210102001"})):
        assert as_user(who).post(f"/tickets/{number}/dispatch", target).status_code == 200
    return number


def replied_with_photo(as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
                       title: str) -> str:
    """Down to worker, signed, checked in 15 m away, a photo uploaded, replied with it."""
    number = at_township(as_user, accept, title=title)
    worker = as_user("worker")
    assert as_user("township").post(f"/tickets/{number}/dispatch",
                                     {"grid": "G-HHW-01"}).status_code == 200
    assert worker.post(f"/tickets/{number}/sign").status_code == 200
    assert worker.post(f"/tickets/{number}/check-in", {
        "lng": 123.4306, "lat": 41.7421, "accuracy_m": 8, "fix_age_s": 3}).status_code == 200
    resp = worker.client.post(f"/api/v1/tickets/{number}/photos", headers=worker.headers(),
                              data={"file": (io.BytesIO(exif_jpeg(colour=(30, 160, 60))),
                                             "after.jpg")},
                              content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_json()
    photo = resp.get_json()["id"]
    assert worker.post(f"/tickets/{number}/reply", {
        "result": "已更换灯泡，路灯恢复正常", "resolution": "resolved",
        "photos": [photo]}).status_code == 200
    return number


WIDEST = """() => {
  const inner = window.innerWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > inner + 0.5)
    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));
  return {scroll: document.documentElement.scrollWidth, inner, wide: wide.slice(0, 5),
          url: location.pathname + location.search};
}"""


def no_sideways_scroll(page: Any) -> None:
    size = page.evaluate(WIDEST)
    assert size["scroll"] <= size["inner"], f"the page scrolls sideways: {size}"


def test_station_dispatches_to_a_grid_and_to_a_worker(
        live_server: str, new_page: Callable, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], walk: Callable[[str], str],
        screenshot: Callable) -> None:
    walk("in_progress")  # G-HHW-01 and worker carry one open ticket
    to_grid = at_township(as_user, accept, title="小区门口路灯不亮", location=None,
                          address="和平区浑河湾街道")
    to_worker = at_township(as_user, accept, title="楼道堆放杂物", location=None,
                            address="和平区浑河湾街道")
    page = new_page(TABLET)
    log_in(page, live_server, "township")
    page.get_by_role("link", name="工作台").click()
    page.wait_for_url(f"{live_server}/station")
    assert "待派发 2" in page.locator("nav.tabs").inner_text().replace("\n", " ")
    screenshot(page, "station-queue-tablet")

    page.get_by_role("link", name=f"派发 {to_grid}").click()
    page.wait_for_url(f"{live_server}/station/tickets/{to_grid}*")
    grid = page.locator("label.choice", has=page.locator('input[value="grid:G-HHW-01"]'))
    assert "在办 1" in grid.inner_text(), "the grid's load is shown"
    worker2 = page.locator("label.choice", has=page.locator('input[value="worker:worker2"]'))
    assert "在办 0" in worker2.inner_text()
    screenshot(page, "station-dispatch-tablet")
    grid.click()
    page.get_by_label("派发说明（可空）").fill("请今天到场")
    page.get_by_role("button", name="确认派发").click()
    page.wait_for_url(f"{live_server}/station?tab=dispatch")
    assert f"已派发：{to_grid}" in page.get_by_role("status").first.inner_text()
    got = as_user("township").get(f"/tickets/{to_grid}").get_json()
    assert (got["grid"], got["assignee"]) == ("G-HHW-01", "worker")

    page.get_by_role("link", name=f"派发 {to_worker}").click()
    worker2 = page.locator("label.choice", has=page.locator('input[value="worker:worker2"]'))
    worker2.click()
    assert page.locator('input[value="worker:worker2"]').is_checked()
    page.get_by_role("button", name="确认派发").click()
    page.wait_for_url(f"{live_server}/station?tab=dispatch")
    assert as_user("township").get(f"/tickets/{to_worker}").get_json()["assignee"] == "worker2"
    assert "没有工单" in page.locator("table.queue").inner_text()

    # Reassign from the 下辖在办 tab: the worker's load now reads 2.
    page.get_by_role("link", name="下辖在办").click()
    page.get_by_role("link", name=f"改派 {to_grid}").click()
    mine = page.locator("label.choice", has=page.locator('input[value="worker:worker"]'))
    assert "在办 2" in mine.inner_text() and "当前承办" in mine.inner_text()
    page.locator("label.choice", has=page.locator('input[value="worker:backup"]')).click()
    page.get_by_role("button", name="确认改派").click()
    page.wait_for_url(f"{live_server}/station?tab=below")
    assert as_user("township").get(f"/tickets/{to_grid}").get_json()["assignee"] == "backup"


def test_station_reviews_closures_with_photos_beside_the_check_in(
        live_server: str, new_page: Callable, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], screenshot: Callable) -> None:
    good = replied_with_photo(as_user, accept, "小区门口路灯不亮")
    bad = replied_with_photo(as_user, accept, "道路井盖破损")
    page = new_page()
    log_in(page, live_server, "township")
    page.goto(f"{live_server}/station?tab=review")
    assert "待审核 2" in page.locator("nav.tabs").inner_text().replace("\n", " ")
    page.get_by_role("link", name=f"审核 {good}").click()
    page.wait_for_url(f"{live_server}/station/tickets/{good}*")
    compare = page.locator(".compare")
    for heading in ("原始反映", "到场打卡", "办理反馈"):
        assert compare.get_by_role("heading", name=heading).is_visible()
    photo = page.get_by_role("img", name="办理照片 1")
    photo.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", photo.element_handle())
    checkin = page.locator("#cmp-checkin + dl").inner_text()
    assert "123.43060" in checkin and "41.74210" in checkin and "米" in checkin
    page.locator("#review-map .leaflet-interactive").first.wait_for()
    assert page.locator("#review-map .leaflet-interactive").count() >= 2, \
        "the report and the check-in are drawn on the small map"
    # The three columns sit side by side on a desktop.
    boxes = [page.locator(".compare > article").nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] == boxes[1]["y"] == boxes[2]["y"]
    screenshot(page, "station-review-desktop")
    page.get_by_role("button", name="审核通过，办结").click()
    page.wait_for_url(f"{live_server}/station?tab=review")
    assert as_user("township").get(f"/tickets/{good}").get_json()["status"] == "closed"

    page.get_by_role("link", name=f"审核 {bad}").click()
    page.get_by_label("退回重办原因").fill("照片看不出井盖已更换，请补拍")
    page.get_by_role("button", name="退回重办").click()
    page.wait_for_url(f"{live_server}/station?tab=review")
    assert f"已退回重办：{bad}" in page.get_by_role("status").first.inner_text()
    got = as_user("township").get(f"/tickets/{bad}").get_json()
    assert got["status"] == "in_progress"


def test_station_redispatches_a_returned_ticket(
        live_server: str, new_page: Callable, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], screenshot: Callable) -> None:
    number = at_township(as_user, accept, title="占道经营影响通行")
    assert as_user("township").post(f"/tickets/{number}/dispatch",
                                     {"grid": "G-HHW-01"}).status_code == 200
    assert as_user("worker").post(f"/tickets/{number}/return",
                                  {"reason": "地点在长白岛社区，不属于本网格"}).status_code == 200
    page = new_page()
    log_in(page, live_server, "township")
    page.goto(f"{live_server}/station")
    page.get_by_role("link", name="退回待重派").click()
    row = page.locator("table.queue tbody tr", has_text=number)
    assert "地点在长白岛社区，不属于本网格" in row.inner_text()
    screenshot(page, "station-returned")
    page.get_by_role("link", name=f"重新派发 {number}").click()
    page.wait_for_url(f"{live_server}/station/tickets/{number}*")
    assert page.get_by_role("heading", name="已退回本单位").is_visible()
    page.locator("label.choice", has=page.locator('input[value="grid:G-CBD-01"]')).click()
    page.get_by_role("button", name="确认派发").click()
    page.wait_for_url(f"{live_server}/station?tab=returned")
    got = as_user("township").get(f"/tickets/{number}").get_json()
    assert (got["grid"], got["assignee"]) == ("G-CBD-01", "worker2")


@pytest.mark.parametrize(("viewport", "font"), [(NARROW, "16px"), (NARROW, "24px"),
                                                ({"width": 1024, "height": 768}, "32px")])
def test_desk_at_320px_and_with_an_enlarged_font(
        viewport: dict[str, int], font: str, live_server: str, new_page: Callable, world: Any,
        as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        screenshot: Callable) -> None:
    number = replied_with_photo(as_user, accept, "供暖温度不达标，家中室温只有十六度")
    waiting = at_township(as_user, accept)
    page = new_page(viewport)
    log_in(page, live_server, "township")
    name = f"{viewport['width']}-{font}"
    for path in ("/station", "/station?tab=review", f"/station/tickets/{number}",
                 f"/station/tickets/{waiting}", "/board", "/"):
        page.goto(f"{live_server}{path}")
        page.add_style_tag(content=f"html {{ font-size: {font}; }}")
        no_sideways_scroll(page)
    page.goto(f"{live_server}/station/tickets/{waiting}")
    page.add_style_tag(content=f"html {{ font-size: {font}; }}")
    # Touch targets: every choice and button at least 44 px tall.
    for locator in (page.locator("label.choice").first, page.get_by_role("button", name="确认派发"),
                    page.get_by_role("link", name="工作台", exact=True)):
        box = locator.bounding_box()
        assert box and box["height"] >= 44, box
    screenshot(page, f"station-dispatch-{name}")
    page.goto(f"{live_server}/station/tickets/{number}")
    page.add_style_tag(content=f"html {{ font-size: {font}; }}")
    screenshot(page, f"station-review-{name}")


def test_village_contact_assigns_within_the_village(
        live_server: str, new_page: Callable, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], screenshot: Callable) -> None:
    number = at_township(as_user, accept, title="社区花坛损坏", location=None,
                         address="和平区浑河湾街道")
    assert as_user("township").post(f"/tickets/{number}/dispatch",
                                     {"unit": "210102001001"}).status_code == 200
    page = new_page(TABLET)
    log_in(page, live_server, "contact")
    page.goto(f"{live_server}/station")
    page.get_by_role("link", name=f"派发 {number}").click()
    page.wait_for_url(f"{live_server}/station/tickets/{number}*")
    # Only the village's own grid and people are offered.
    values = set(page.locator('input[name="target"]').evaluate_all("els => els.map(e => e.value)"))
    assert values == {"grid:G-HHW-01", "worker:worker", "worker:backup", "worker:contact"}
    screenshot(page, "contact-dispatch-tablet")
    page.locator("label.choice", has=page.locator('input[value="worker:backup"]')).click()
    page.get_by_role("button", name="确认派发").click()
    page.wait_for_url(f"{live_server}/station?tab=dispatch")
    assert as_user("contact").get(f"/tickets/{number}").get_json()["assignee"] == "backup"


def test_the_browsers_own_font_setting_is_followed(
        live_server: str, new_page: Callable, world: Any, as_user: Callable[[str], Api],
        accept: Callable[..., dict[str, Any]], screenshot: Callable) -> None:
    """A user who set the browser's default font to 32 px gets 32 px text (sizes are in rem,
    breakpoints in em), and the desk still fits a 1024 px tablet."""
    number = replied_with_photo(as_user, accept, "楼道声控灯不亮")
    page = new_page(TABLET)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Page.setFontSizes", {"fontSizes": {"standard": 32, "fixed": 26}})
    log_in(page, live_server, "township")
    for path in ("/station?tab=review", f"/station/tickets/{number}", "/board", "/map"):
        page.goto(f"{live_server}{path}")
        assert page.evaluate("() => getComputedStyle(document.body).fontSize") == "32px"
        no_sideways_scroll(page)
    page.goto(f"{live_server}/station?tab=review")
    heading = page.get_by_role("heading", level=1).bounding_box()
    assert heading and heading["height"] >= 60, heading  # 2em of 32 px
    # Through the same CDP session: Playwright's own screenshot resets the font override.
    shot = cdp.send("Page.captureScreenshot", {"format": "png"})
    path = screenshot(page, "station-review-queue-font32")
    path.write_bytes(base64.b64decode(shot["data"]))
