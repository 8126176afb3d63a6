"""The Rules page's rule-health section in a real Chromium against a real ``panel serve``:
Refresh reads it, the recommendation and the tables are shown as text, the plots draw."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.conftest import build_scored
from workbench.storage import connect, write_batch

pytestmark = [pytest.mark.ui, pytest.mark.slow]
UPDATE_S = 60.0


def test_rule_health_reads_on_refresh_and_draws(browser, dashboard, ui_dsn, screenshots):
    with connect(ui_dsn) as conn:  # about 7 days, one transaction every 5 minutes
        write_batch(conn, build_scored(2000, step_s=300.0), alert_dedup_s=600.0)
    page = browser.open(dashboard)
    page.locator(".bk-tab", has_text="Rules").click()
    message = page.locator(".health-message")
    expect(message).to_contain_text("Press Refresh", timeout=UPDATE_S * 1000)
    page.locator(".health-refresh button").click()
    expect(message).to_contain_text("drift alarm(s)", timeout=UPDATE_S * 1000)
    expect(page.locator(".health-advice")).to_contain_text(
        "set bands.high to", timeout=UPDATE_S * 1000
    )
    expect(page.locator(".health-overlap")).to_contain_text("new_country")
    plots = page.locator(".health-plot")
    expect(plots).to_have_count(3, timeout=UPDATE_S * 1000)
    for i in range(3):  # the fire rates; alerts/day and precision/recall/CP@k by threshold
        canvas = plots.nth(i).locator("canvas").first
        expect(canvas).to_be_visible(timeout=UPDATE_S * 1000)
        box = canvas.bounding_box()
        assert box["x"] >= 0 and box["width"] > 300 and box["height"] > 150, box
    page.screenshot(path=screenshots / "rule-health.png", full_page=True)
    browser.check()
