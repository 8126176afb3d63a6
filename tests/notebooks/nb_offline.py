"""An executed notebook exported to HTML and opened in Chromium with the network off.

Every request that is neither ``file:``, ``data:``, ``blob:`` nor 127.0.0.1 is aborted (and
recorded), the way an analyst's laptop on a train or an air-gapped machine would see it.
The page must then show its plots: Bokeh roots rendered with canvases inside them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

RENDER_S = 60.0  # BokehJS and Panel inline are ~10 MB of script to parse on a busy machine
EMPTY_SCRIPT = "data:text/javascript,"
LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}


def is_local(url: str) -> bool:
    """Whether ``url`` stays on this machine (file, in-page data or loopback)."""
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


def export_html(nb, path: Path) -> Path:
    """Write the executed notebook ``nb`` as a standalone HTML file (nbconvert's lab template)."""
    import copy

    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        # Panel's extension also displays an empty bundle (a placeholder for its comm
        # messages): nothing to show, and nbconvert warns about it.
        cell["outputs"] = [
            o
            for o in cell.get("outputs", [])
            if o.get("output_type") not in ("display_data", "execute_result") or o.get("data")
        ]
    # The exporter's own page loads require.js and MathJax from a CDN: page chrome, not the
    # notebook's assets (the notebooks have no math, and Panel's output needs no require.js).
    exporter = HTMLExporter(require_js_url=EMPTY_SCRIPT, mathjax_url=EMPTY_SCRIPT)
    body, _ = exporter.from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")
    return path


@dataclass
class Rendered:
    """What Chromium saw of one exported notebook."""

    roots: int
    canvases: int
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# Counts rendered Bokeh roots and canvases, also inside Panel's shadow roots.
_COUNT_JS = """() => {
  const ROOTS = '.bk-Figure, .bk-GridPlot, .bk-Column, .bk-Row, .bk-panel-models-layout-Column';
  let roots = 0, canvases = 0;
  const walk = (node) => {
    roots += node.querySelectorAll(ROOTS).length;
    canvases += node.querySelectorAll('canvas').length;
    for (const el of node.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  return [roots, canvases];
}"""


class OfflineBrowser:
    """One Chromium whose pages cannot reach anything but this machine."""

    def __init__(self, browser) -> None:
        self.browser = browser

    def render(self, html: Path, *, min_canvases: int = 1) -> Rendered:
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        seen = Rendered(0, 0)

        def route(r) -> None:
            if is_local(r.request.url):
                r.continue_()
            else:
                seen.blocked.append(r.request.url)
                r.abort()

        try:
            context.route("**/*", route)
            page = context.new_page()
            page.on("requestfailed", lambda r: seen.failed.append(f"{r.url}: {r.failure}"))
            page.on("pageerror", lambda e: seen.errors.append(str(e)))
            page.on(
                "console",
                lambda m: seen.errors.append(m.text) if m.type == "error" else None,
            )
            page.goto(html.as_uri(), timeout=RENDER_S * 1000)
            deadline = time.monotonic() + RENDER_S
            while True:
                seen.roots, seen.canvases = page.evaluate(_COUNT_JS)
                if seen.canvases >= min_canvases or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(500)
            page.wait_for_timeout(1000)  # late loaders (a CDN script) would show up now
            seen.roots, seen.canvases = page.evaluate(_COUNT_JS)
        finally:
            context.close()
        return seen


# Module-scoped: Playwright's sync API keeps its event loop marked as running in the main
# thread until it stops, and later tests of the same pytest process use asyncio.run().
@pytest.fixture(scope="module")
def offline_browser() -> Iterator[OfflineBrowser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (`make chromium`)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield OfflineBrowser(browser)
        finally:
            browser.close()
    finally:
        playwright.stop()
