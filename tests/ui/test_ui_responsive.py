"""Every page at 1400, 720 and 390 px: screenshots, no horizontal overflow, the viewport
meta, keyboard tab switching, the live status after the worker stops, the loading state of a
page being built, History's deep link, load timings, and a server log without "Task exception
was never retrieved" after tabs close.

One server of its own (its log is read), one worker run (so the pages have data), Chromium.
Screenshots go to ``test-artifacts/screenshots/<page>-<width>.png``; timings are printed
(``-s``) as ``timing: ...`` lines (benchmarks/bench_session_start.py measures them).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import expect

from tests.ui.conftest import serve_dashboard
from workbench.dashboard.evidence import history_query
from workbench.dashboard.live import CARD_MIN_WIDTH

pytestmark = [pytest.mark.ui, pytest.mark.slow]

WIDTHS = (1400, 720, 390)
TABS = ("Live", "Alerts", "History", "Rules", "Lists")
STATUS_S = 5.0  # the live status shows a stopped worker within this (+ one pull)
BUILD_MS = 60_000  # a page opened for the first time is built: seconds on a busy machine


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("panel-responsive")


@pytest.fixture(scope="module")
def dashboard(ui_dsn: str, server_log: Path) -> Iterator[str]:
    with serve_dashboard(ui_dsn, server_log) as url:
        yield url


# Every animation frame, the page notes the text of each visible "Loading <page>…"
# placeholder (Panel draws inside shadow roots: searched through them).
LOADING_SEEN_JS = """
window.__loadingSeen = new Set();
const deepText = (el) => [el.textContent, ...[el, ...el.querySelectorAll("*")]
  .filter((e) => e.shadowRoot).map((e) => deepText(e.shadowRoot))].join(" ");
const look = (root) => {
  for (const el of root.querySelectorAll("*")) {
    // Bokeh hides the other tabs' pages with visibility: hidden
    if (el.classList.contains("tab-loading")
        && el.checkVisibility({visibilityProperty: true, opacityProperty: true})) {
      const m = deepText(el.shadowRoot || el).match(/Loading [A-Za-z]+…/);
      if (m) window.__loadingSeen.add(m[0]);
    }
    if (el.shadowRoot) look(el.shadowRoot);
  }
};
const tick = () => { look(document); requestAnimationFrame(tick); };
requestAnimationFrame(tick);
"""


def open_at(browser, url: str, width: int, *, content: str = ".kpi-processed"):
    """A new session at ``width`` px, returned once ``content`` is shown; prints the seconds
    to the header, the tab bar and ``content``."""
    context = browser.browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(LOADING_SEEN_JS)
    page.on("pageerror", lambda e: browser.errors.append(f"{width}px page error: {e}"))
    page.on("request", lambda r: browser.requests.append(r.url))
    page.on("websocket", lambda ws: browser.requests.append(ws.url))
    started = time.monotonic()
    page.goto(url, timeout=120_000)
    seen = {}
    for what, selector in (("header", ".wb-header"), ("tab bar", ".bk-tab >> nth=4")):
        page.locator(selector).wait_for(timeout=120_000)
        seen[what] = time.monotonic() - started
    page.locator(content).first.wait_for(timeout=120_000)
    seen["content"] = time.monotonic() - started
    print(f"timing: {width}px " + ", ".join(f"{k} {v:.1f} s" for k, v in seen.items()))
    return page


def loading_seen(page) -> set[str]:
    """The placeholders ("Loading Live…") the page has shown so far."""
    return set(page.evaluate("() => [...window.__loadingSeen]"))


def overflow(page) -> tuple[int, int]:
    """(document scroll width, viewport width): the page must not scroll sideways."""
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


# The boxes of the visible Bokeh plots of the page (hidden tabs' plots have no size); Panel
# and Bokeh render into shadow roots, which document.querySelectorAll does not enter.
_PLOT_BOXES = """() => {
  const boxes = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot);
      if (el.classList.contains('bk-Canvas')) {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) boxes.push([r.left, r.right, r.top, r.bottom]);
      }
    }
  };
  walk(document);
  return boxes;
}"""
LIVE_PLOTS = 5  # score and band trends, band distribution, hits per rule, map


def check_live_plots(page, width: int) -> None:
    """Every Live plot lies within the viewport; narrower than two cards, they stack one per
    line at the width of the screen; on a wide screen some share a line."""
    boxes = sorted(page.evaluate(_PLOT_BOXES), key=lambda b: b[2])
    assert len(boxes) == LIVE_PLOTS, boxes
    for left, right, _top, _bottom in boxes:
        assert left >= 0 and right <= width, f"a Live plot at {width}px: {left}..{right}"
    stacked = all(b[2] >= a[3] - 1 for a, b in itertools.pairwise(boxes))
    if width < 2 * CARD_MIN_WIDTH:
        assert stacked, f"Live plots share a line at {width}px: {boxes}"
        assert all(right - left >= width - 40 for left, right, *_ in boxes), boxes
    else:
        assert not stacked, f"Live plots one per line at {width}px: {boxes}"


def test_the_live_status_turns_stalled_after_the_worker_stops(browser, dashboard, pipeline):
    page = open_at(browser, dashboard, 1400)
    status = page.locator(".live-status")
    expect(status).to_contain_text("live", timeout=150_000)
    pipeline.finish()
    stopped = time.monotonic()
    expect(status).to_contain_text("stalled", timeout=(STATUS_S + 5) * 1000)
    print(f"timing: stalled shown {time.monotonic() - stopped:.1f} s after the worker exited")
    expect(status).to_contain_text("wall clock (UTC)")
    expect(page.locator(".kpi-tx_per_s")).to_contain_text("0")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_width(browser, dashboard, pipeline, screenshots, width):
    pipeline.finish()
    page = open_at(browser, dashboard, width)
    meta = page.evaluate(
        "() => document.querySelector('meta[name=viewport]')?.getAttribute('content')"
    )
    assert meta and "width=device-width" in meta
    for name in TABS:
        page.locator(".bk-tab", has_text=name).click()
        page.wait_for_timeout(3000 if name != "History" else 8000)  # charts load on first show
        page.screenshot(path=screenshots / f"{name.lower()}-{width}.png", full_page=True)
        scroll, view = overflow(page)
        assert scroll <= view, f"{name} at {width}px scrolls sideways: {scroll} > {view}"
        if name == "Live":
            check_live_plots(page, width)
    page.context.close()


def test_tabs_switch_by_keyboard(browser, dashboard):
    page = open_at(browser, dashboard, 1400)
    first = page.locator(".bk-tab", has_text="Live")
    first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator(".bk-tab.bk-active")).to_contain_text("Alerts", timeout=10_000)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press(" ")
    expect(page.locator(".bk-tab.bk-active")).to_contain_text("Live", timeout=10_000)
    page.locator(".bk-tab", has_text="History").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".bk-tab.bk-active")).to_contain_text("History", timeout=10_000)
    page.context.close()


def test_a_page_shows_its_loading_state_until_it_is_built(browser, dashboard):
    page = open_at(browser, dashboard, 1400)
    assert "Loading Live…" in loading_seen(page)  # the header and tabs came before Live
    expect(page.get_by_text("Loading Live…")).to_have_count(0)  # replaced by the page
    expect(page.locator(".kpi-processed")).to_be_visible()
    assert "Loading Lists…" not in loading_seen(page)  # never shown: never built
    page.locator(".bk-tab", has_text="Lists").click()
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_visible(timeout=BUILD_MS)
    expect(page.get_by_text("Loading Lists…")).to_have_count(0)
    assert "Loading Lists…" in loading_seen(page)
    page.locator(".bk-tab", has_text="Live").click()  # built once: shown again at once
    expect(page.locator(".kpi-processed")).to_be_visible(timeout=10_000)
    page.context.close()
    browser.check()


def test_a_history_link_opens_the_drill_down_without_building_live(
    browser, dashboard, pipeline, ui_dsn
):
    pipeline.finish()  # its transactions are stored
    with psycopg.connect(ui_dsn) as conn:
        card, at = conn.execute("SELECT card_id, ts FROM transactions LIMIT 1").fetchone()
    link = dashboard + history_query(card, at)
    page = open_at(browser, link, 1400, content=".history-card .tabulator-row")
    expect(page.locator(".bk-tab.bk-active")).to_contain_text("History")
    expect(page.get_by_label("Card", exact=True)).to_have_value(card)
    expect(page.locator(".history-plots canvas").first).to_be_visible(timeout=BUILD_MS)
    assert page.locator(".kpi-processed").count() == 0  # Live was never opened
    assert "Loading Live…" not in loading_seen(page)
    page.locator(".bk-tab", has_text="Live").click()
    expect(page.locator(".kpi-processed")).to_be_visible(timeout=BUILD_MS)
    page.context.close()
    browser.check()


def test_closing_tabs_leaves_no_unretrieved_task_in_the_server_log(browser, dashboard, server_log):
    for wait_ms in (200, 500, 1000, 2000):  # tabs closed at several points of the updates
        page = open_at(browser, dashboard, 1400)
        page.locator(".bk-tab", has_text="History").click()
        page.wait_for_timeout(wait_ms)
        page.context.close()  # the websocket closes while the session's callbacks run
    time.sleep(8)
    log = (server_log / "panel-serve.log").read_text()
    assert "Task exception was never retrieved" not in log
    assert "WebSocketClosedError" not in log
    browser.check()
