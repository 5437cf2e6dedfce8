"""The county supervisor's board in a real browser: an overdue, escalated ticket shows under
its township — in the township table with its counts and in the overdue list's township group —
and choosing the township narrows the lists to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, IN_CI, PHONE
from tests.browser.test_pages import log_in
from tests.conftest import Api
from tests.test_escalation_support import accept_at, act_at, scan, seed, sh

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not IN_CI,
                       reason=f"{CHROMIUM} is missing (apt-get install chromium, "
                              "or set YIHAO_CHROMIUM)"),
]


@pytest.fixture
def overdue(app: Any, world: Any, as_user: Callable[[str], Api]) -> dict[str, str]:
    """A ticket in 浑河湾街道 left untouched until it reached the county's board, and one in
    新华街道 still within its time."""
    seed(app)
    late = accept_at(app, world, sh(2025, 3, 3, 10))
    act_at(app, world, late, "hotline", "dispatch", {"grid": "G-HHW-01"}, sh(2025, 3, 3, 10, 5))
    scan(app, sh(2025, 3, 4, 9))
    for day in (4, 5, 6):
        scan(app, sh(2025, 3, day, 10, 6))
    fresh = as_user("hotline").post("/tickets", {
        "source": "hotline", "type": "help", "title": "新华社区楼道灯坏了",
        "content": "新华社区三号楼楼道灯坏了。", "address": "沈阳市和平区新华街道新华社区",
        "external_id": "fresh-1"}).get_json()["number"]
    for who, unit in (("hotline", "210102"), ("county", "210102002")):
        assert as_user(who).post(f"/tickets/{fresh}/dispatch", {"unit": unit}).status_code == 200
    return {"late": late, "fresh": fresh}


def test_supervisor_sees_the_overdue_ticket_under_its_township(
        live_server: str, new_page: Callable, overdue: dict[str, str],
        screenshot: Callable) -> None:
    page = new_page()
    log_in(page, live_server, "county")
    page.get_by_role("link", name="督办看板").click()
    page.wait_for_url(f"{live_server}/board")
    table = page.locator("table.townships")
    row = table.locator("tbody tr", has_text="浑河湾街道")
    cells = row.locator("td")
    assert int(cells.nth(2).inner_text()) >= 1, "overdue counted for 浑河湾街道"
    assert int(cells.nth(3).inner_text()) >= 1, "its escalation counted too"
    assert cells.nth(2).get_attribute("class") == "bad"
    group = page.locator("table.clocks.overdue tbody", has_text="浑河湾街道")
    assert overdue["late"] in group.inner_text()
    assert overdue["fresh"] not in page.locator("table.clocks.overdue").inner_text()
    screenshot(page, "supervisor-board")

    row.get_by_role("link", name="浑河湾街道").click()
    page.wait_for_url(f"{live_server}/board?township=*")
    assert "正在查看：浑河湾街道" in page.locator("main").inner_text()
    assert overdue["late"] in page.locator("table.clocks.overdue").inner_text()
    assert page.locator("table.townships tr.on").inner_text().startswith("浑河湾街道")
    screenshot(page, "supervisor-board-township")


def test_board_fits_a_phone(live_server: str, new_page: Callable, overdue: dict[str, str],
                            screenshot: Callable) -> None:
    page = new_page(PHONE)
    log_in(page, live_server, "county")
    page.goto(f"{live_server}/board")
    size = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, "
                         "inner: window.innerWidth})")
    assert size["scroll"] <= size["inner"], size
    screenshot(page, "supervisor-board-phone")
