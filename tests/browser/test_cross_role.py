"""One ticket through every hand, each in the browser that role uses: the township station
dispatches it on its desk (tablet), the grid worker signs, checks in, photographs and replies
on the phone — the reply written while offline and sent when the signal returns — and the
station reviews the closure on its desk, the worker's photo beside the check-in, and closes
it. The ticket's history then holds the whole loop, one event per step, on a valid chain.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.browser.conftest import CHROMIUM, IN_CI
from tests.browser.test_pages import log_in as desk_log_in
from tests.browser.test_pwa import (
    events,
    kinds,
    log_in,
    open_ticket,
    phone,  # noqa: F401  (a fixture)
    shot,  # noqa: F401  (a fixture)
    sign_and_check_in,
    wait_queue_empty,
    write_reply,
)
from tests.browser.test_station import TABLET, at_township
from tests.conftest import Api
from tests.grids_fixtures import drawn  # noqa: F401  (a fixture: the world with grid polygons)
from tests.test_photos import exif_jpeg

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not IN_CI,
                       reason=f"{CHROMIUM} is missing (apt-get install chromium, "
                              "or set YIHAO_CHROMIUM)"),
]


def test_station_desk_to_workers_phone_offline_and_back_to_the_desk(
        app: Flask, drawn: Any, live_server: str, new_page: Callable,  # noqa: F811
        phone: Callable, shot: Callable, as_user: Callable[[str], Api],  # noqa: F811
        accept: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    number = at_township(as_user, accept, title="浑河湾社区南门路灯不亮")

    # The station dispatches on its desk.
    desk = new_page(TABLET)
    desk_log_in(desk, live_server, "township")
    desk.goto(f"{live_server}/station?tab=dispatch")
    desk.get_by_role("link", name=f"派发 {number}").click()
    desk.locator("label.choice", has=desk.locator('input[value="grid:G-HHW-01"]')).click()
    desk.get_by_role("button", name="确认派发").click()
    desk.wait_for_url(f"{live_server}/station?tab=dispatch")
    assert f"已派发：{number}" in desk.get_by_role("status").first.inner_text()

    # The worker finds it on the phone, signs, checks in, and writes the reply offline.
    context = phone()
    worker = context.new_page()
    log_in(worker, live_server)
    open_ticket(worker, number)
    sign_and_check_in(worker)
    wait_queue_empty(worker)
    photo = tmp_path / "after.jpg"
    photo.write_bytes(exif_jpeg(colour=(30, 160, 60)))
    context.set_offline(True)
    write_reply(worker, [photo], "已更换灯泡，路灯恢复正常。")
    worker.get_by_role("button", name="提交反馈").click()
    worker.get_by_text("已保存在手机上，联网后自动发送").wait_for()
    assert kinds(as_user, number)[-1] == "check_in", "nothing left the phone while offline"
    context.set_offline(False)
    wait_queue_empty(worker)
    assert kinds(as_user, number)[-1] == "reply"
    shot(worker, "cross-role-worker-sent")

    # The station reviews on its desk, the photo beside the check-in, and closes it.
    desk.goto(f"{live_server}/station?tab=review")
    desk.get_by_role("link", name=f"审核 {number}").click()
    desk.wait_for_url(f"{live_server}/station/tickets/{number}*")
    assert "已更换灯泡，路灯恢复正常。" in desk.locator(".compare").inner_text()
    image = desk.get_by_role("img", name="办理照片 1")
    image.wait_for()
    assert desk.evaluate("(img) => img.complete && img.naturalWidth > 0",
                         image.element_handle())
    shot(desk, "cross-role-station-review")
    desk.get_by_role("button", name="审核通过，办结").click()
    desk.wait_for_url(f"{live_server}/station?tab=review")

    history = events(as_user, number)
    assert [e["kind"] for e in history] == [
        "accept", "dispatch", "dispatch", "dispatch", "sign", "check_in", "photo", "reply",
        "approve"]
    assert [e["actor"] for e in history][-5:] == ["worker"] * 4 + ["township"]
    assert as_user("township").get(f"/tickets/{number}").get_json()["status"] == "closed"
    with app.app_context():
        from server.core.audit import verify_chain

        assert list(verify_chain(anchors=False)) == [], "the audit chain holds"
