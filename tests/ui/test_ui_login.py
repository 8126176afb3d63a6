"""A real Chromium logs in to the documented ``panel serve`` command with the workbench login.

A wrong password is refused (the page says so, the audit trail records it); the right one
opens the dashboard, whose header shows the login's name and role from the credentials file
("alice (analyst)"); the session cookies are HttpOnly and SameSite=Lax; Logout ends the
session. Every request stays on the dashboard's server.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.login_server import REPO, command, environment, free_port
from tests.processes import stop_group
from workbench.auth.users import UsersFile
from workbench.storage import audit, connect

pytestmark = [pytest.mark.ui, pytest.mark.slow]

PASSWORD = "correct horse battery"
LOAD_MS = 120_000  # a session is built server-side in 5-40 s on a busy 2-core machine


@pytest.fixture(scope="module")
def server(databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("ui-login")
    UsersFile(folder / "users.json").add("alice", PASSWORD, "analyst")
    port = free_port()
    with databases.fresh("wb_ui_login", migrate=True) as dsn:
        log = folder / "panel-serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command(port),
                cwd=REPO,
                env=environment(dsn, folder / "users.json"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            import urllib.request

            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "panel serve did not answer"
                    time.sleep(0.25)
            yield f"http://127.0.0.1:{port}", dsn
        finally:
            stop_group(proc, term_grace=10.0)


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the UI tests need Debian's Chromium")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def test_login_in_chromium(server, chromium, screenshots: Path) -> None:
    base, dsn = server
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(base + "/", timeout=LOAD_MS)
    assert "/login" in page.url  # the dashboard sends a stranger to the login page

    page.fill("#username", "alice")
    page.fill("#password", "not her password")
    page.click("#login-submit")
    page.locator(".error").wait_for()
    assert page.locator(".error").inner_text() == "Wrong user name or password."
    assert not [c for c in context.cookies() if c["name"] == "user"]
    with connect(dsn) as conn:
        refused = audit.recent(conn, 5, action="login", outcome="refused")
    assert list(refused["actor"]) == ["alice"] and list(refused["address"]) == ["127.0.0.1"]

    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    with page.expect_response(
        lambda r: r.url.endswith("/login") and r.request.method == "POST"
    ) as post:
        page.click("#login-submit")
    set_cookie = post.value.all_headers().get("set-cookie", "")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie, set_cookie
    badge = page.locator(".wb-user")
    badge.wait_for(timeout=LOAD_MS)
    assert badge.inner_text() == "alice (analyst)"
    page.locator(".kpi-processed").wait_for(timeout=LOAD_MS)  # the dashboard itself loaded
    page.screenshot(path=str(screenshots / "login-dashboard.png"))
    cookie = next(c for c in context.cookies() if c["name"] == "user")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie").find("user=") == -1  # not readable by scripts

    page.locator(".wb-logout").click()
    page.locator("#logged-out").wait_for()
    assert not [c for c in context.cookies() if c["name"] == "user"]
    page.goto(base + "/", timeout=LOAD_MS)
    assert "/login" in page.url

    local = (base + "/", base.replace("http", "ws", 1) + "/", "blob:" + base + "/", "data:")
    foreign = [u for u in requests if not u.startswith(local)]
    assert foreign == [], foreign
    assert errors == [], errors
    context.close()
