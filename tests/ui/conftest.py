"""End-to-end fixtures: a real PostgreSQL, a real ``panel serve``, a real pipeline worker and
Debian's Chromium driven by Playwright.

Everything is module-scoped and started once: a fresh migrated database (dropped WITH FORCE
at the end), the dashboard server on a free port, one browser, and the "watcher" page, which
is opened before the worker starts, so it sees the whole run live. Every page opened here
records console errors, page errors and every URL it requests, so tests can assert that the
console is clean and the page works offline. Subprocesses run in their own process groups and
are killed at teardown, also when a test fails.

The PostgreSQL server is the one of ``tests/conftest.py``. Chromium is not optional: when
``/usr/bin/chromium`` is missing the tests fail (``make test`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from psycopg import conninfo

from tests import login_server
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_S = 120.0  # panel serve imports panel, bokeh, holoviews... on a busy machine
PAGE_LOAD_S = 120.0  # a session is built server-side in 5-40 s on a busy 2-core machine
WORKER = {
    "rate": "2000",
    "duration": "25",
    "batch-rows": "500",  # four batches a second: the feed moves often
}
# Fraud scenarios much more frequent than the defaults, so High transactions come at once.
WORKER_ENV = {
    "WORKBENCH_FRAUD_LARGE_AMOUNT": "0.01",
    "WORKBENCH_FRAUD_ACCOUNT_TAKEOVER": "0.01",
}


@pytest.fixture(scope="module")
def ui_dsn(databases) -> Iterator[str]:
    """DSN of a fresh, migrated database for this module's dashboard and worker."""
    with databases.fresh("wb_ui", migrate=True) as dsn:
        yield dsn


# -- subprocesses -----------------------------------------------------------------------------


def _url(dsn: str) -> str:
    """A postgresql:// URL of a DSN (``WORKBENCH_DATABASE_URL`` wants a URL)."""
    p = conninfo.conninfo_to_dict(dsn)
    user = p.get("user") or "postgres"
    password = f":{p['password']}" if p.get("password") else ""
    host = p.get("host") or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"postgresql://{user}{password}@{host}:{p.get('port') or 5432}/{p['dbname']}"


def _env(dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "PG"))}
    env.update(WORKBENCH_DATABASE_URL=_url(dsn), WORKBENCH_RULES_DIR=str(REPO / "rules"))
    env.update(extra)
    return env


class Process:
    """A subprocess in its own process group, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.log.stem} still running after {timeout:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        stop_group(self.proc, term_grace=10.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(
    dsn: str, log_dir: Path, *, users: Path | None = None, **env: str
) -> Iterator[str]:
    """A real ``panel serve`` of the app on a free port (``env``: extra or replaced
    ``WORKBENCH_*`` variables, e.g. another rules directory); yields its URL. With
    ``users`` (a credentials file), the README's command with the workbench login
    (:mod:`tests.login_server`): the URL is then the login-protected ``/``."""
    port = _free_port()
    args = (
        login_server.command(port)
        if users is not None
        else [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "workbench/dashboard/app.py",
            "--setup",
            "workbench/dashboard/startup.py",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin",
            f"127.0.0.1:{port}",
        ]
    )
    if users is not None:
        env = {"WORKBENCH_AUTH_USERS_FILE": str(users), **env}
    server = Process(args, _env(dsn, **env), log_dir / "panel-serve.log")
    url = f"http://127.0.0.1:{port}/" if users is not None else f"http://127.0.0.1:{port}/app"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.proc.poll() is not None:
                pytest.fail(f"panel serve exited with {server.proc.returncode}:\n{server.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"panel serve did not answer within {SERVER_START_S:.0f} s")
            time.sleep(0.25)
        print(f"panel serve answered after {time.monotonic() - deadline + SERVER_START_S:.1f} s")
        yield url
    finally:
        server.kill()


@pytest.fixture(scope="module")
def dashboard(ui_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the app served by a real ``panel serve`` on a free port."""
    with serve_dashboard(ui_dsn, tmp_path_factory.mktemp("panel")) as url:
        yield url


class Pipeline:
    """The worker process, started once by :meth:`start`."""

    def __init__(self, dsn: str, log: Path) -> None:
        self.dsn, self.log = dsn, log
        self.process: Process | None = None

    def start(self) -> Pipeline:
        if self.process is None:
            args = [sys.executable, "-m", "workbench", "run"]
            for option, value in WORKER.items():
                args += [f"--{option}", value]
            self.process = Process(args, _env(self.dsn, **WORKER_ENV), self.log)
            print("worker started")
        return self

    def finish(self, timeout: float = 180.0) -> None:
        """Wait for the worker's ``--duration`` to run out; it must exit cleanly."""
        assert self.process is not None
        code = self.process.wait(timeout)
        assert code == 0, f"the worker exited with {code}:\n{self.process.tail()}"

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


# -- the browser ------------------------------------------------------------------------------


class Browser:
    """One Chromium; every page it opens logs console errors and requested URLs."""

    def __init__(self, browser, base_url: str) -> None:
        self.browser = browser
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url))
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.pages: list[Any] = []

    def open(self, url: str, login: tuple[str, str] | None = None):
        """A new page (own browser context: a separate session) with the app loaded;
        ``login``: (name, password) typed into the login page the app sends a stranger to."""
        context = self.browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(30_000)
        n = len(self.pages)
        page.on("console", lambda m: self._console(n, m))
        page.on("pageerror", lambda e: self.errors.append(f"page {n} error: {e}\n{e.stack}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.pages.append(page)
        started = time.monotonic()
        page.goto(url, timeout=PAGE_LOAD_S * 1000)
        if login is not None:
            page.fill("#username", login[0])
            page.fill("#password", login[1])
            page.click("#login-submit")
        page.locator(".kpi-processed").wait_for(timeout=PAGE_LOAD_S * 1000)
        print(f"page {n} loaded in {time.monotonic() - started:.1f} s")
        return page

    def _console(self, n: int, message) -> None:
        if message.type == "error":
            self.errors.append(f"page {n} console: {message.text} ({message.location})")

    def foreign_requests(self) -> list[str]:
        """Requests that did not go to the dashboard server (a CDN, a font service...).
        ``data:`` URLs and ``blob:`` URLs of the server's own origin are in-page data."""
        local = (
            self.origin + "/",
            self.origin.replace("http", "ws", 1) + "/",
            "blob:" + self.origin + "/",
            "data:",
        )
        return [u for u in self.requests if not u.startswith(local)]

    def check(self) -> None:
        """The console of every page so far is clean and nothing was fetched from elsewhere."""
        assert self.errors == [], "browser console errors:\n" + "\n".join(self.errors)
        foreign = self.foreign_requests()
        assert foreign == [], "requests to other servers than the dashboard:\n" + "\n".join(foreign)
        assert self.requests, "no request was recorded at all"


@pytest.fixture(scope="module")
def browser(dashboard: str) -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: the UI tests need Debian's Chromium "
            "(`apt-get install chromium`; `make test` installs it)"
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Browser(chromium, dashboard)
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def watcher(browser: Browser, dashboard: str):
    """The page opened before the worker starts; tests install their probes on it."""
    return browser.open(dashboard)


@pytest.fixture(scope="module")
def pipeline(ui_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The pipeline worker (``--duration`` bounded); request it after the pages that must see
    the whole run."""
    worker = Pipeline(ui_dsn, tmp_path_factory.mktemp("worker") / "worker.log").start()
    try:
        yield worker
    finally:
        worker.kill()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def wait_for_editor_text(ace, text: str, timeout_s: float) -> str:
    """The rule editor's whole text (Ace's value, not only the lines in view) once it holds
    ``text``; AssertionError with what it held after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    value = ""
    while time.monotonic() < deadline:
        if ace.count():
            value = ace.evaluate("el => el.env && el.env.editor ? el.env.editor.getValue() : ''")
            if text in value:
                return value
        time.sleep(0.25)
    raise AssertionError(f"the rule editor never held {text!r}; it held {value[:200]!r}")
