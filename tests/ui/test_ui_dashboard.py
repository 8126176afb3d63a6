"""The live dashboard end to end: Chromium, ``panel serve``, a pipeline worker, PostgreSQL.

The tests run in file order against one server and one worker run (see ``conftest.py``), on a
"watcher" page opened before the worker starts: the live page while the worker runs, then a
disposition, the history page, and finally the watcher and a page opened after the run are
compared with the database once the worker has stopped. Each saves a full-page
screenshot under ``test-artifacts/screenshots/`` and checks that the browser console is clean
and that every request went to the dashboard server.

Tabulator draws only the rows in view, so row counts are read from the data the browser
holds: the ``source.data`` of the Tabulator models in ``Bokeh.documents[0]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from tests.ui.conftest import wait_for_editor_text
from workbench.dashboard.live import FEED_ROWS, TABLE_ROWS
from workbench.dashboard.login import session_identity

pytestmark = [pytest.mark.ui, pytest.mark.slow]

WORKER_START_S = 150.0  # worker start-up (imports, JIT) and first batches on a busy machine
FEED_DEADLINE_S = 10.0  # a stored High transaction is in the watcher's alert feed by then
UPDATE_S = 60.0  # any other change the page must show
MANY = 1_000  # "far more" transactions than the live table's rollover

# Data of the Tabulator models by CSS class, as the browser holds it.
TABLES_JS = """() => {
  const out = {};
  for (const m of Bokeh.documents[0].all_models) {
    if (!String(m.type).endsWith("DataTabulator")) continue;
    const d = m.source.data;
    const n = Object.keys(d).length ? d[Object.keys(d)[0]].length : 0;
    const ids = d.tx_id ? Array.from(d.tx_id) : (d.id ? Array.from(d.id) : []);
    for (const cls of m.css_classes) out[cls] = {rows: n, ids: ids};
  }
  return out;
}"""

# Samples the live table and alert feed every 50 ms from then on: the largest row count ever
# held, and when each tx_id of the feed was first seen (epoch ms).
WATCH_JS = """() => {
  const models = {};
  for (const m of Bokeh.documents[0].all_models)
    if (String(m.type).endsWith("DataTabulator"))
      for (const cls of m.css_classes) models[cls] = m;
  const w = {max: {}, feedSeen: {}, samples: 0};
  const sample = () => {
    for (const cls of ["live-transactions", "alert-feed"]) {
      const d = models[cls].source.data;
      const n = Object.keys(d).length ? d[Object.keys(d)[0]].length : 0;
      w.max[cls] = Math.max(w.max[cls] || 0, n);
    }
    const now = Date.now();
    for (const id of models["alert-feed"].source.data.tx_id || [])
      if (!(id in w.feedSeen)) w.feedSeen[id] = now;
    w.samples += 1;
  };
  sample();
  window.__uiWatch = w;
  setInterval(sample, 50);
  return Date.now();
}"""


def query(dsn: str, text: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(text, params).fetchall()


def wait_until(probe: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds with
    ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(0.25)


def kpi(page, key: str) -> str:
    """The displayed value of one KPI indicator (its title is the first line)."""
    return page.locator(f".kpi-{key} div").first.inner_text().strip().splitlines()[-1].strip()


def kpi_int(page, key: str) -> int:
    return int(kpi(page, key).replace(",", ""))


def tables(page) -> dict[str, dict[str, Any]]:
    return page.evaluate(TABLES_JS)


def stored(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM transactions")[0][0]


def tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


@pytest.fixture(scope="module")
def watch(watcher) -> tuple[Any, float]:
    """The watcher page with its sampler installed, and when it was installed (epoch s).
    Tests that use the pipeline request it after this, so the page sees the whole run."""
    return watcher, watcher.evaluate(WATCH_JS) / 1000.0


def high_in_feed(page, dsn: str, since: float) -> list[tuple[str, str, float, float]]:
    """(tx_id, band, stored_at, first seen) of the feed's rows stored after ``since``."""
    seen = page.evaluate("() => window.__uiWatch.feedSeen")
    rows = query(
        dsn,
        "SELECT tx_id, band, extract(epoch FROM stored_at)::float8 FROM transactions "
        "WHERE tx_id = ANY(%s)",
        (list(seen),),
    )
    return [(t, band, at, seen[t] / 1000.0) for t, band, at in rows if at >= since]


def test_live_page_follows_the_pipeline(watch, pipeline, browser, ui_dsn, screenshots):
    page, since = watch
    before = kpi_int(page, "processed")
    # The KPIs move while batches arrive (the worker runs for WORKER["duration"] seconds).
    first = wait_until(
        lambda: kpi_int(page, "processed") > before and kpi_int(page, "processed"),
        timeout=WORKER_START_S,
        what="the Transactions KPI to increase",
    )
    wait_until(
        lambda: kpi_int(page, "processed") > first,
        timeout=UPDATE_S,
        what=f"the Transactions KPI to increase again from {first}",
    )
    wait_until(lambda: kpi_int(page, "tx_per_s") > 0, timeout=UPDATE_S, what="tx/s above 0")
    wait_until(lambda: kpi_int(page, "open_alerts") > 0, timeout=UPDATE_S, what="open alerts")
    wait_until(
        lambda: float(kpi(page, "pct_high").rstrip("%")) > 0, timeout=UPDATE_S, what="% High"
    )
    assert kpi(page, "mean_score") != "—"
    assert kpi(page, "latency").endswith("ms")

    # A High transaction stored while the page is open reaches the alert feed within seconds
    # (the feed shows the newest High rows of each batch, so not necessarily that one).
    first_high = wait_until(
        lambda: query(
            ui_dsn,
            "SELECT min(extract(epoch FROM stored_at))::float8 FROM transactions "
            "WHERE band = 'High' AND stored_at >= to_timestamp(%s)",
            (since,),
        )[0][0],
        timeout=WORKER_START_S,
        what="a High transaction stored while the page is open",
    )
    shown = wait_until(
        lambda: high_in_feed(page, ui_dsn, since),
        timeout=UPDATE_S,
        what="a newly stored transaction in the alert feed",
    )
    assert {band for _, band, _, _ in shown} == {"High"}, shown
    first_seen = min(seen for _, _, _, seen in shown)
    assert first_seen - first_high < FEED_DEADLINE_S, (
        f"the alert feed stayed still {first_seen - first_high:.1f} s after a High transaction "
        f"was stored (latency KPI: {kpi(page, 'latency')})"
    )
    feed_ids = tables(page)["alert-feed"]["ids"]
    bands = query(ui_dsn, "SELECT band FROM transactions WHERE tx_id = ANY(%s)", (feed_ids,))
    assert len(bands) == len(feed_ids) and {b for (b,) in bands} == {"High"}

    # Far more transactions than the rollover went through; the table never held more.
    wait_until(lambda: stored(ui_dsn) >= MANY, timeout=UPDATE_S, what=f"{MANY} stored rows")
    wait_until(
        lambda: tables(page)["live-transactions"]["rows"] == TABLE_ROWS,
        timeout=UPDATE_S,
        what=f"a full live table ({TABLE_ROWS} rows)",
    )
    watched = page.evaluate("() => window.__uiWatch")
    assert watched["samples"] > 10
    assert watched["max"]["live-transactions"] == TABLE_ROWS
    assert watched["max"]["alert-feed"] <= FEED_ROWS

    expect(page.locator(".health")).to_contain_text("ok")
    page.screenshot(path=screenshots / "live.png", full_page=True)
    browser.check()


def test_disposition_is_stored(watch, pipeline, browser, ui_dsn, screenshots):
    page, _ = watch
    tab(page, "Alerts")
    row = page.locator(".alert-queue .tabulator-row").first
    row.wait_for(timeout=UPDATE_S * 1000)
    confirm = page.get_by_role("button", name="Confirmed fraud")
    # The queue reloads when its tab is shown; a click that lands while the rows are being
    # replaced can be lost (as for a user, who clicks again), so click until it registers.
    for attempt in range(3):
        row.click()
        try:
            expect(confirm).to_be_enabled(timeout=UPDATE_S * 1000 // 3)
            break
        except AssertionError:
            if attempt == 2:
                raise
    summary = page.locator(".alert-summary div").first.inner_text()
    alert_id = int(summary.split()[1])  # "Alert 12 — open ..."
    assert "open" in summary.splitlines()[0]
    expect(page.locator(".alert-explanation .tabulator-row").first).to_be_visible()
    page.screenshot(path=screenshots / "alerts.png", full_page=True)

    # No name box: the dashboard runs without a login here, so the session is the local user.
    expect(page.get_by_label("Analyst")).to_have_count(0)
    analyst = session_identity().user
    confirm.click()
    expect(page.locator(".alert-message")).to_contain_text(
        f"Alert {alert_id} closed as Confirmed fraud by {analyst}", timeout=UPDATE_S * 1000
    )
    for label in ("Confirmed fraud", "False positive", "Valuable alert"):
        expect(page.get_by_role("button", name=label)).to_be_disabled()
    row = query(
        ui_dsn,
        "SELECT status, disposition, assignee, closed_at IS NOT NULL FROM alerts WHERE id = %s",
        (alert_id,),
    )
    assert row == [("closed", "confirmed_fraud", analyst, True)]
    audited = query(
        ui_dsn,
        "SELECT actor, role, provider, outcome, after->>'disposition' FROM audit_log"
        " WHERE action = 'alert.dispose' AND object = %s",
        (f"alert {alert_id}",),
    )
    assert audited == [(analyst, "admin", "local", "ok", "confirmed_fraud")]
    # The local admin's session has the Audit tab: the disposition is listed, newest first.
    tab(page, "Audit")
    first = page.locator(".audit-table .tabulator-row").first
    expect(first).to_contain_text("alert.dispose", timeout=UPDATE_S * 1000)
    expect(first).to_contain_text(f"alert {alert_id}")
    page.screenshot(path=screenshots / "audit.png", full_page=True)
    tab(page, "Alerts")
    browser.check()


def test_history_page_draws_the_stored_range(watch, pipeline, browser, ui_dsn, screenshots):
    wait_until(lambda: stored(ui_dsn) > 0, timeout=WORKER_START_S, what="stored transactions")
    page, _ = watch
    tab(page, "History")
    message = page.locator(".history-message")
    expect(message).to_contain_text("transactions in buckets of", timeout=UPDATE_S * 1000)
    shown = int(message.locator("div").first.inner_text().split()[0].replace(",", ""))
    assert 0 < shown <= stored(ui_dsn)
    expect(page.locator(".history-plots canvas").first).to_be_visible()
    page.screenshot(path=screenshots / "history.png", full_page=True)
    browser.check()


def test_two_sessions_agree_with_the_database(watch, browser, dashboard, pipeline, ui_dsn):
    """The watcher saw the run live; a page opened after it starts from the hub's state."""
    watch, _ = watch
    tab(watch, "Live")
    pipeline.finish()
    total = stored(ui_dsn)
    assert total >= MANY
    fresh = browser.open(dashboard)
    for page in (watch, fresh):
        wait_until(
            lambda page=page: kpi_int(page, "processed") == total,
            timeout=UPDATE_S,
            what=f"the Transactions KPI to show {total:,} (as stored)",
        )

    # Both hold the same newest transactions in their live table. A live table is redrawn at
    # most every TABLE_EVERY_S and the KPIs are not held back, so the watcher's table may show
    # the last batch up to that long (and a status tick) after its KPI.
    def same_rows() -> bool:
        watched, opened = tables(watch)["live-transactions"], tables(fresh)["live-transactions"]
        return watched["rows"] == min(total, TABLE_ROWS) and sorted(opened["ids"]) == sorted(
            watched["ids"]
        )

    wait_until(same_rows, timeout=UPDATE_S, what="both live tables to hold the newest rows")
    open_alerts = query(ui_dsn, "SELECT count(*) FROM alerts WHERE status = 'open'")[0][0]
    for page in (watch, fresh):
        wait_until(
            lambda page=page: kpi_int(page, "open_alerts") == open_alerts,
            timeout=UPDATE_S,
            what=f"the Open alerts KPI to show {open_alerts} (as stored)",
        )
    browser.check()


def test_rule_editor_shows_a_refused_edit_at_its_line(browser, dashboard, screenshots):
    page = browser.open(dashboard)
    tab(page, "Rules")
    ace = page.locator(".rule-editor .ace_editor")
    wait_for_editor_text(ace, "very_large_amount", UPDATE_S)
    # A typo in a feature name, typed into the editor (only Validate: nothing is written).
    line = ace.evaluate(
        """el => {
          const editor = el.env.editor;
          const text = editor.getValue().replace("card_tx_10m >= 2", "card_tx_10mm >= 2");
          editor.setValue(text, -1);
          return text.split("\\n").findIndex(l => l.includes("card_tx_10mm")) + 1;
        }"""
    )
    assert line > 0
    page.locator(".bk-btn", has_text="Validate").click()
    expect(page.locator(".editor-message")).to_contain_text("Refused", timeout=UPDATE_S * 1000)
    errors = page.locator(".editor-errors")
    expect(errors).to_contain_text("card_testing", timeout=UPDATE_S * 1000)
    expect(errors).to_contain_text("card_tx_10mm", timeout=UPDATE_S * 1000)
    annotations = ace.evaluate("el => el.env.editor.getSession().getAnnotations()")
    assert [(a["row"] + 1, a["type"]) for a in annotations] == [(line, "error")]
    assert "card_testing" in annotations[0]["text"]
    page.screenshot(path=screenshots / "rule-editor.png", full_page=True)
    browser.check()
