"""Browser fixtures: the real app under a real WSGI server, driven by Debian's Chromium.

The app and its data come from ``tests/conftest.py`` (``app``, ``world``, ``accept``), so
the browser tests run on SQLite by default and on PostgreSQL when
``YIHAO_TEST_DATABASE_URL`` names one, like every other test. The server is werkzeug's
threaded server on 127.0.0.1 and a free port, in a thread of the test process: a real HTTP
server with real cookies and redirects, not the Flask test client.

Chromium is Debian's (``/usr/bin/chromium``; ``YIHAO_CHROMIUM`` overrides): Playwright's own
browser download cannot work on an offline or intranet machine. Without it the tests skip
with a reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("YIHAO_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
# Without the background-networking flags Chromium keeps dialling out, and a closed network
# refuses it many times a second; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """When a browser test fails, keep what a person needs to see why: a screenshot of every
    page still open (tests/screenshots/failed-*.png) and what the pages printed, appended to
    the report. Runs before teardown closes the pages."""
    report = yield
    lines: list[str] | None = item.stash.get(_BROWSER_LOG, None)
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and lines is not None and browser is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for c, context in enumerate(browser.contexts):
            for p, page in enumerate(context.pages):
                path = SCREENSHOTS / f"failed-{item.name}-{c}-{p}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                    lines.append(f"screenshot {path} of {page.url}")
                except Exception as error:
                    lines.append(f"no screenshot of {page.url}: {error}")
        report.sections.append(("browser log", "\n".join(lines)))
    return report


_BROWSER_LOG = pytest.StashKey[list[str]]()


@pytest.fixture(autouse=True)
def _browser_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Record what every browser context of the test prints (console messages, uncaught
    errors, failed requests), for the report of a failed test."""
    if "browser" not in request.fixturenames:
        yield
        return
    browser = request.getfixturevalue("browser")
    lines: list[str] = []
    request.node.stash[_BROWSER_LOG] = lines
    started = time.monotonic()

    def note(text: str) -> None:
        lines.append(f"{time.monotonic() - started:7.2f}s {text}")

    original = browser.new_context

    def new_context(*args: Any, **kwargs: Any) -> Any:
        context = original(*args, **kwargs)
        context.on("console", lambda m: note(f"console.{m.type}: {m.text}"))
        context.on("weberror", lambda e: note(f"pageerror: {e.error}"))
        context.on("requestfailed",
                   lambda r: note(f"requestfailed: {r.method} {r.url} {r.failure}"))
        return context

    browser.new_context = new_context
    try:
        yield
    finally:
        browser.new_context = original


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing and CI=true: install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or set YIHAO_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()
    finally:
        pw.stop()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and a free port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh browser contexts (own cookies), desktop-sized unless told."""
    contexts: list[Any] = []

    def _new(viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(viewport=viewport or DESKTOP, locale="zh-CN",
                                      timezone_id="Asia/Shanghai")
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield _new
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot to tests/screenshots/ (gitignored) for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shot(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot


@pytest.fixture
def two_tickets(world: Any, as_user: Callable[[str], Any],
                accept: Callable[..., dict[str, Any]]) -> dict[str, str]:
    """One ticket walked down to a grid worker in 和平区, one sent to 沈河区 (county2).

    Made through the API as the hotline and the units would, so the pages show what the
    real flow leaves behind.
    """
    heping = accept(title="和平区浑河湾社区南门路灯不亮")["number"]
    for who, body in (("hotline", {"unit": "210102"}), ("county", {"unit": "210102001"}),
                      ("township", {"grid": "G-HHW-01"})):
        resp = as_user(who).post(f"/tickets/{heping}/dispatch", body)
        assert resp.status_code == 200, resp.get_json()
    shenhe = accept(title="沈河区滨河路井盖缺失", address="沈阳市沈河区滨河街道滨河路",
                    location=None)["number"]
    resp = as_user("hotline").post(f"/tickets/{shenhe}/dispatch", {"unit": "210103"})
    assert resp.status_code == 200, resp.get_json()
    return {"heping": heping, "shenhe": shenhe}
