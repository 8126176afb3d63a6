"""The Lists page in a real browser: an analyst adds and removes a list value and snoozes a
rule; a hostile reason is shown as text (no element made from it), a hostile value is
refused with a message; every edit lands in the database and the audit trail."""

from __future__ import annotations

import psycopg
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.ui, pytest.mark.slow]

UPDATE_S = 60.0
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def query(dsn: str, text: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(text).fetchall()


def fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")  # a TextInput sends its value on change


def test_lists_page_edits_are_stored_audited_and_escaped(browser, dashboard, ui_dsn, screenshots):
    page = browser.open(dashboard)
    page.locator(".bk-tab", has_text="Lists").click()
    lists = page.locator(".list-entries")
    expect(lists).to_be_visible(timeout=UPDATE_S * 1000)
    fill(page, "Value", "card-e2e-1")
    fill(page, "Reason", HOSTILE)
    page.get_by_role("button", name="Add", exact=True).click()
    message = page.locator(".lists-message")
    expect(message).to_contain_text("card-e2e-1 added to blocked_cards", timeout=UPDATE_S * 1000)
    expect(lists.locator(".tabulator-row").first).to_contain_text(HOSTILE)  # as text
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator(".list-entries img").count() == 0
    # A hostile value is refused before the database, with the reason.
    fill(page, "Value", HOSTILE)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(message).to_contain_text("Not done: a card value holds", timeout=UPDATE_S * 1000)
    expect(message).to_contain_text("got '<img src=x onerror=")  # quoted back as text
    assert page.locator(".lists-message img").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    assert query(ui_dsn, "SELECT value, reason FROM list_entries") == [("card-e2e-1", HOSTILE)]
    page.screenshot(path=screenshots / "lists.png", full_page=True)
    # Remove it again.
    lists.locator(".tabulator-row").first.click()
    page.locator(".bk-btn", has_text="Remove selected").click()
    expect(message).to_contain_text("removed from blocked_cards", timeout=UPDATE_S * 1000)
    assert query(ui_dsn, "SELECT count(*) FROM list_entries") == [(0,)]
    actions = query(
        ui_dsn,
        "SELECT action, outcome FROM audit_log WHERE action = 'list.edit' ORDER BY id",
    )
    assert actions == [("list.edit", "ok"), ("list.edit", "failed"), ("list.edit", "ok")]
    browser.check()
