"""The case queue in a real browser, on a database seeded with 20,000 open cases and alerts.

Seeded by SQL (tests/case_seed.py) in seconds, not through the pipeline. The dashboard runs
the README's command with the workbench login and two analysts: ann (added with the
``workbench users`` command) and bob (added with the users API), each logged in through the
login page in a browser context of their own. Filter, page, sort, claim; ann claims a case,
and bob's claim of the same case is refused in his browser with her name; a close by
keyboard that selects the next case without leaving the page, a bulk close; screenshots at
1400, 720 and 390 px wide in ``test-artifacts/screenshots``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import expect

from tests.case_seed import seed_cases
from tests.login_server import REPO, environment
from tests.ui.conftest import VIEWPORT, serve_dashboard
from workbench.auth.users import UsersFile
from workbench.storage.connection import connect

pytestmark = pytest.mark.ui

CASES = 20_000
WAIT_MS = 60_000
PASSWORD = "two analysts, one case"


@pytest.fixture(scope="module")
def ui_dsn(databases) -> Iterator[str]:
    """This module's database: migrated, then seeded with CASES open cases and alerts."""
    with databases.fresh("wb_uiq", migrate=True) as dsn:
        with connect(dsn) as conn:
            started = time.monotonic()
            seed_cases(conn, CASES)
            print(f"seeded {CASES:,} cases and alerts in {time.monotonic() - started:.1f} s")
        yield dsn


@pytest.fixture(scope="module")
def dashboard(ui_dsn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The login-protected dashboard on the seeded database, with analysts ann and bob."""
    folder = tmp_path_factory.mktemp("uiq-login")
    users = folder / "users.json"
    added = subprocess.run(
        [sys.executable, "-m", "workbench", "users", "add", "ann", "--role", "analyst",
         "--password-stdin"],
        input=PASSWORD + "\n", env=environment(ui_dsn, users), cwd=REPO, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    UsersFile(users).add("bob", PASSWORD, "analyst")
    with serve_dashboard(ui_dsn, folder, users=users) as url:
        yield url


def query(dsn: str, text: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else []


def header_id(page) -> int:
    text = page.locator(".case-header div").first.inner_text()
    found = re.search(r"Case (\d+)", text)
    assert found, f"no case in the header: {text!r}"
    return int(found.group(1))


def first_id(page) -> int:
    cell = page.locator('.case-queue .tabulator-row .tabulator-cell[tabulator-field="id"]')
    return int(cell.first.inner_text())


def button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def open_alerts(page) -> None:
    page.locator(".bk-tab", has_text="Alerts").click()
    expect(page.locator(".case-header")).to_contain_text("Case ", timeout=WAIT_MS)


def test_the_queue_filters_pages_claims_and_closes(browser, dashboard, ui_dsn, screenshots):
    me = "ann"
    page = browser.open(dashboard, login=(me, PASSWORD))
    expect(page.locator(".wb-user")).to_have_text("ann (analyst)")
    page.locator(".bk-tab", has_text="Alerts").click()
    rows = page.locator(".case-queue .tabulator-row")
    expect(rows.first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".case-counts")).to_contain_text("open", timeout=WAIT_MS)
    expect(page.locator(".case-header")).to_contain_text("Case ", timeout=WAIT_MS)
    page.screenshot(path=screenshots / "queue-1400.png", full_page=True)

    # Sorted by score: the first row is the highest-scoring active case.
    top = query(ui_dsn, "SELECT id FROM cases WHERE status <> 'closed' "
                        "ORDER BY max_score DESC, id DESC LIMIT 1")[0][0]  # fmt: skip
    assert first_id(page) == top

    # Next page and back.
    button(page, "Next ▶").click()
    expect(page.locator(".case-header")).not_to_contain_text(f"Case {top} ", timeout=WAIT_MS)
    second = first_id(page)
    assert second != top
    button(page, "◀ Previous").click()
    expect(rows.first).to_contain_text(str(top), timeout=WAIT_MS)

    # Filter: High band only (the status/band buttons are toggles).
    button(page, "High").click()
    expect(page.locator(".case-counts")).to_contain_text("band", timeout=WAIT_MS)
    time.sleep(1.0)
    bands = page.locator('.case-queue .tabulator-cell[tabulator-field="band"]').all_inner_texts()
    assert bands and set(bands) == {"High"}

    # Sort by SLA due.
    page.locator(".case-queue-page select").nth(1).select_option("sla")
    due = query(ui_dsn, "SELECT id FROM cases WHERE status <> 'closed' AND band = 'High' "
                        "ORDER BY sla_due, id LIMIT 1")[0][0]  # fmt: skip
    expect(rows.first).to_contain_text(str(due), timeout=WAIT_MS)

    # Claim the selected case from the page.
    expect(page.locator(".case-header")).to_contain_text(f"Case {due} ", timeout=WAIT_MS)
    if query(ui_dsn, "SELECT assignee FROM cases WHERE id = %s", (due,))[0][0] is not None:
        query(ui_dsn, "UPDATE cases SET assignee = NULL WHERE id = %s", (due,))
    button(page, "Claim").click()
    expect(page.locator(".case-message")).to_contain_text(f"Claimed case {due}", timeout=WAIT_MS)
    assert query(ui_dsn, "SELECT assignee FROM cases WHERE id = %s", (due,)) == [(me,)]

    # Two analysts, two logins, one case: ann claims the next case in her browser; bob,
    # logged in in his own browser, finds it by its card and is refused with her name.
    page.keyboard.press("j")
    expect(page.locator(".case-header")).not_to_contain_text(f"Case {due} ", timeout=WAIT_MS)
    taken = header_id(page)
    query(ui_dsn, "UPDATE cases SET assignee = NULL WHERE id = %s", (taken,))
    button(page, "Claim").click()
    expect(page.locator(".case-message")).to_contain_text(f"Claimed case {taken}", timeout=WAIT_MS)
    card = query(ui_dsn, "SELECT card_id FROM cases WHERE id = %s", (taken,))[0][0]
    bob = browser.open(dashboard, login=("bob", PASSWORD))
    expect(bob.locator(".wb-user")).to_have_text("bob (analyst)")
    open_alerts(bob)
    card_filter = bob.get_by_label("Card id", exact=True)
    card_filter.fill(card)
    card_filter.press("Enter")
    expect(bob.locator(".case-header")).to_contain_text(f"Case {taken} ", timeout=WAIT_MS)
    button(bob, "Claim").click()
    expect(bob.locator(".case-message")).to_contain_text("held by ann", timeout=WAIT_MS)
    assert query(ui_dsn, "SELECT assignee FROM cases WHERE id = %s", (taken,)) == [(me,)]
    refused = query(
        ui_dsn,
        "SELECT actor, outcome FROM audit_log WHERE action = 'case.claim' AND object = %s",
        (f"case {taken}",),
    )
    assert sorted(refused) == [(me, "ok"), ("bob", "refused")]
    bob.screenshot(path=screenshots / "queue-claim-refused.png", full_page=True)
    bob.context.close()

    # Close by keyboard ("n": not fraud): the next case is selected, the page stays.
    ids_before = page.locator('.case-queue .tabulator-cell[tabulator-field="id"]').all_inner_texts()
    position = ids_before.index(str(taken))
    page.keyboard.press("n")
    expect(page.locator(".case-message")).to_contain_text(
        f"Case {taken} closed as False positive by {me}", timeout=WAIT_MS
    )
    assert header_id(page) == int(ids_before[position + 1])
    assert first_id(page) == int(ids_before[0])
    closed = query(
        ui_dsn,
        "SELECT c.status, c.outcome, a.status, a.disposition FROM cases c"
        " JOIN alerts a ON a.case_id = c.id WHERE c.id = %s",
        (taken,),
    )
    assert closed == [("closed", "false_positive", "closed", "false_positive")]

    # Bulk close: tick three rows, close them together.
    boxes = page.locator(".case-queue .tabulator-row input[type=checkbox]")
    ticked = page.locator('.case-queue .tabulator-cell[tabulator-field="id"]').all_inner_texts()[
        2:5
    ]
    for i in (2, 3, 4):
        boxes.nth(i).check()
    page.get_by_role("button", name="Close ticked").click()
    expect(page.locator(".queue-message")).to_contain_text("Closed 3 case(s)", timeout=WAIT_MS)
    statuses = query(ui_dsn, "SELECT DISTINCT status FROM cases WHERE id = ANY(%s)",
                     ([int(i) for i in ticked],))  # fmt: skip
    assert statuses == [("closed",)]

    for width in (720, 390):
        page.set_viewport_size({"width": width, "height": VIEWPORT["height"]})
        time.sleep(1.0)
        page.screenshot(path=screenshots / f"queue-{width}.png", full_page=True)
    page.set_viewport_size(VIEWPORT)
    browser.check()
