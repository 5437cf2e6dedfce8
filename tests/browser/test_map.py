"""The map in a real browser, with no tiles (nothing from the internet): the grids, their open
load and the county outline are drawn; a grid drawn by clicking its corners is saved (and
then edited by dragging a corner, which makes version 2); a drawing over another grid is
refused with the validation report's message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, IN_CI
from tests.browser.test_pages import log_in
from tests.browser.test_station import at_township
from tests.conftest import Api
from tests.grids_fixtures import drawn  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not IN_CI,
                       reason=f"{CHROMIUM} is missing (apt-get install chromium, "
                              "or set YIHAO_CHROMIUM)"),
]


def open_map(page: Any, base: str, requests: list[str]) -> None:
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base}/map")
    page.wait_for_function("() => document.getElementById('map-status').textContent"
                           ".startsWith('网格')")


def click_at(page: Any, lng: float, lat: float) -> None:
    """Click the map where (lng, lat) is drawn."""
    point = page.evaluate("([lat, lng]) => { const p = yihaoMap.latLngToContainerPoint([lat, lng]);"
                          " return {x: p.x, y: p.y}; }", [lat, lng])
    page.locator("#map").click(position=point)


def draw(page: Any, corners: list[tuple[float, float]]) -> None:
    page.get_by_role("button", name="开始绘制").click()
    for lng, lat in corners:
        click_at(page, lng, lat)


def fill_form(page: Any, code: str, name: str, village: str) -> None:
    page.get_by_label("网格编码").fill(code)
    page.get_by_label("网格名称").fill(name)
    page.get_by_label("所属村（社区）").select_option(village)


def test_map_shows_grids_load_and_draws_a_grid(
        live_server: str, new_page: Callable, drawn: Any,  # noqa: F811
        as_user: Callable[[str], Api], accept: Callable[..., dict[str, Any]],
        screenshot: Callable) -> None:
    for _ in range(3):  # three open tickets in G-HHW-01 ("busy"), down at the township
        at_township(as_user, accept)
    page = new_page()
    log_in(page, live_server, "township")
    requests: list[str] = []
    open_map(page, live_server, requests)
    assert "网格 3 个，在办工单 3 件" in page.locator("#map-status").inner_text()
    assert all(url.startswith(live_server) for url in requests), \
        [u for u in requests if not u.startswith(live_server)]
    assert page.locator(".leaflet-tile").count() == 0, "no tiles unless configured"
    # Three grid polygons and the county outline (a dashed path), the busy grid's count.
    paths = page.locator("#map path.leaflet-interactive")
    assert paths.count() >= 3
    assert page.locator("#map .grid-count.load-busy").inner_text() == "3"
    screenshot(page, "map-grids")

    page.evaluate("yihaoMap.setView([41.7433, 123.4225], 16)")
    fill_form(page, "G-HHW-03", "浑河湾第三网格", "210102001001")
    draw(page, [(123.4180, 41.7420), (123.4220, 41.7420), (123.4220, 41.7446),
                (123.4180, 41.7446)])
    assert page.locator("#map .vertex").count() == 4
    screenshot(page, "map-drawing")
    page.get_by_role("button", name="保存网格").click()
    message = page.locator("#draw-message")
    message.wait_for(state="visible")
    assert "已新建网格 G-HHW-03（第 1 版）" in message.inner_text()
    grids = as_user("township").get("/grids").get_json()["features"]
    new = next(f for f in grids if f["properties"]["code"] == "G-HHW-03")
    assert new["properties"]["unit"] == "210102001001"
    ring = new["geometry"]["coordinates"][0][0]
    assert min(p[0] for p in ring) == pytest.approx(123.4180, abs=2e-5)
    page.wait_for_function("() => document.getElementById('map-status').textContent"
                           ".startsWith('网格 4 个')")

    # Edit it: select it, drag its north-east corner east, save → version 2.
    click_at(page, 123.4200, 41.7433)
    page.get_by_role("button", name="修改所选网格").click()
    assert page.get_by_label("网格编码").input_value() == "G-HHW-03"
    handles = page.locator("#map .vertex")
    assert handles.count() == 4
    start = page.evaluate("() => { const p = yihaoMap.latLngToContainerPoint([41.7446, 123.4180]);"
                          " const b = document.getElementById('map').getBoundingClientRect();"
                          " return {x: b.left + p.x, y: b.top + p.y}; }")
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] - 30, start["y"] - 30, steps=5)
    page.mouse.up()
    page.get_by_role("button", name="保存网格").click()
    page.wait_for_function("() => document.getElementById('draw-message').textContent"
                           ".includes('第 2 版')")
    assert "已保存网格 G-HHW-03（第 2 版）" in message.inner_text()
    screenshot(page, "map-saved")


def test_an_overlapping_drawing_shows_the_validation_message(
        live_server: str, new_page: Callable, drawn: Any,  # noqa: F811
        as_user: Callable[[str], Api], screenshot: Callable) -> None:
    page = new_page()
    log_in(page, live_server, "township")
    open_map(page, live_server, [])
    page.evaluate("yihaoMap.setView([41.7433, 123.4225], 16)")
    fill_form(page, "G-HHW-09", "重叠的网格", "210102001001")
    # Half of it lies over G-HHW-02 (123.4230–123.4270).
    draw(page, [(123.4200, 41.7422), (123.4250, 41.7422), (123.4250, 41.7444),
                (123.4200, 41.7444)])
    page.get_by_role("button", name="保存网格").click()
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible")
    text = alert.inner_text()
    assert text.startswith("网格未保存") and "与其他网格重叠" in text and "G-HHW-02" in text
    screenshot(page, "map-refused")
    codes = {f["properties"]["code"] for f in as_user("township").get("/grids").get_json()["features"]}
    assert "G-HHW-09" not in codes
    # The drawing stays on the map to be corrected; cancelling clears it.
    assert page.locator("#map .vertex").count() == 4
    page.get_by_role("button", name="取消").click()
    assert page.locator("#map .vertex").count() == 0


def test_a_village_contact_sees_the_map_without_drawing_tools(
        live_server: str, new_page: Callable, drawn: Any,  # noqa: F811
        screenshot: Callable) -> None:
    page = new_page({"width": 360, "height": 740})
    log_in(page, live_server, "contact")
    open_map(page, live_server, [])
    assert page.get_by_role("button", name="开始绘制").count() == 0
    size = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, "
                         "inner: window.innerWidth})")
    assert size["scroll"] <= size["inner"], size
    screenshot(page, "map-phone-contact")
