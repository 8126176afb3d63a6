"""Hostile text end to end: nothing an outsider wrote runs in the analyst's browser.

A replay file whose card, terminal, device, merchant and transaction ids are a corpus of
hostile strings (script and img tags, event handlers, ``javascript:`` links, Markdown links
and images, Bokeh tooltip fields, template braces, a right-to-left override) is replayed
by a real ``workbench run --source replay`` worker into PostgreSQL, scored by a rule file
whose descriptions are hostile too (one is 10,000 characters long), while a page is open
on a real ``panel serve``. A refused rule-set load whose author, version and error are
hostile is then recorded as the watcher records one, an analyst name and notes are typed
into the Alerts page, and a broken rule naming a hostile field is validated in the editor.

Every page is driven where the text appears — Live (toast, live table, alert feed, map hover,
health), the rule-error banner, Alerts (queue, summary, explanation, attached transactions,
card history, disposition message), History (card drill-down), Rules (error table,
history, diff) — and the test asserts that no payload ran (no dialog, ``window.__pwned``
unset, no ``<img>``/``<script>``/``<iframe>``/event handler of ours anywhere in the shadow
DOM, no request to another server, a clean console) and that the text is shown literally.
Screenshots go to ``test-artifacts/screenshots/hostile-*.png``.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from playwright.sync_api import expect

from tests.ui.conftest import REPO, Process, _env, serve_dashboard, wait_for_editor_text
from workbench.dashboard.live_toasts import TOAST_SHOWN_MS
from workbench.errors import RuleError, RuleSetError
from workbench.rules import parse_rules
from workbench.storage import rule_sets

pytestmark = [pytest.mark.ui, pytest.mark.slow]

WAIT_S = 150.0  # worker start-up and a session's first pages on a busy 2-core machine
UPDATE_S = 60.0

# Each sets window.__pwned or opens a dialog if it ever runs. At most 64 characters: every
# one must pass the schema as a merchant category too.
CORPUS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=2</script>",
    '" onmouseover="window.__pwned=3" x="',
    "' onfocus='window.__pwned=4' autofocus='",
    '<a href="javascript:window.__pwned=5">j</a>',
    "[x](javascript:window.__pwned=6)",
    "![x](http://127.0.0.1:9/x.png)",
    "@{card_id}{safe} $x $index",
    "{{7*7}} ${7*7} <%= 7*7 %> {label.__class__}",
    "\u202eexe.lave <b>rlo</b>",
    "<svg/onload=window.__pwned=7>",
    "<img src=x onerror=alert(1)>",
    "**bold** _em_ `code` | pipe | <i>i</i>",
    '<iframe src="javascript:alert(2)">',
]
LONG = "<b>long</b>" + "x" * (10_000 - 11)  # 10,000 characters
CARD = CORPUS[0]  # the card the test drills down to

RULES_YAML = """
rules:
  - id: hostile_text
    description: '{desc}'
    when: amount > 0
    score: 80
    examples:
      match: [{{amount: 5}}]
      no_match: [{{amount: 0}}]
  - id: hostile_long
    description: '{long}'
    when: amount > 1000
    score: 1
"""
# A rule with an unknown key named by a hostile string (the error quotes it); the comment
# line would close a Markdown ``diff`` fence and open a script.
BROKEN_YAML = """
rules:
  - id: broken
    description: a rule with a key that does not exist
    when: amount > 1
    score: 5
    '{key}': 1
# ```
# <script>window.__pwned=9</script>
"""
# Anything that could run: elements and attributes a payload would create, in the main
# document and every (open) shadow root. Our own markup has none of them.
CANARY_JS = """() => {
  const found = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll("*")) {
      const tag = el.tagName.toLowerCase();
      if (tag === "iframe") found.push("iframe");
      if (tag === "img" && /^(x|http:\\/\\/127\\.0\\.0\\.1:9)/.test(el.getAttribute("src") || ""))
        found.push("img " + el.getAttribute("src"));
      if (tag === "script" && /__pwned|alert\\(/.test(el.textContent)) found.push("script");
      if (tag === "a" && /^\\s*javascript:/i.test(el.getAttribute("href") || "")) found.push("a");
      for (const attr of el.attributes)
        if (/^on/i.test(attr.name) && /__pwned|alert\\(/.test(attr.value))
          found.push(tag + " " + attr.name);
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return {pwned: window.__pwned === undefined ? null : window.__pwned, found: found};
}"""

# Where the first point of a figure (found by its title) is on the screen, scrolled into view;
# null when no figure has that title.
POINT_JS = """([title, x, y]) => {
  const plot = [...Bokeh.documents[0].all_models].find(m => m.title && m.title.text === title);
  if (plot == null) return null;
  const view = Bokeh.index.find_one(plot);
  const renderer = plot.renderers.find(r => r.data_source && r.data_source.data[x]);
  const data = renderer.data_source.data;
  view.canvas_view.events_el.scrollIntoView({block: "center"});
  const rect = view.canvas_view.events_el.getBoundingClientRect();
  return {x: rect.left + view.frame.x_scale.compute(Number(data[x][0])),
          y: rect.top + view.frame.y_scale.compute(Number(data[y][0]))};
}"""


def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _quoted(text: str) -> str:
    """``text`` inside a single-quoted YAML scalar."""
    return text.replace("'", "''")


@pytest.fixture(scope="module")
def hostile_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's rules plus a file whose rules have hostile descriptions."""
    folder = tmp_path_factory.mktemp("rules") / "rules"
    shutil.copytree(REPO / "rules", folder)
    desc = " ".join(CORPUS)
    (folder / "hostile.yaml").write_text(
        RULES_YAML.format(desc=_quoted(desc), long=_quoted(LONG)), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV whose text columns are the corpus (rotated, so one alert shows several), plus
    one row with a 10,000-character card id (a dead letter: over the schema's limit)."""
    path = tmp_path_factory.mktemp("replay") / "hostile.csv"
    start = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=5)
    n = len(CORPUS)
    header = (
        "tx_id ts card_id terminal_id merchant_category amount country lat lon channel device_id"
    )
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(header.split())
        for i, text in enumerate(CORPUS):
            ts = (start + pd.Timedelta(seconds=i)).isoformat()
            more = [CORPUS[(i + k) % n] for k in range(1, 6)]
            w.writerow(
                [f"{text}#{i}", ts, text, *more[:2], "1234.50", more[2], 48.85, 2.35, *more[3:]]
            )
        w.writerow(["long#0", start.isoformat(), LONG, "t", "m", "1.00", "FR", "", "", "pos", "d"])
    return path


@pytest.fixture(scope="module")
def dashboard(ui_dsn: str, hostile_rules: Path, tmp_path_factory) -> Iterator[str]:
    """The app served with the hostile rules directory (replaces the conftest's)."""
    with serve_dashboard(
        ui_dsn, tmp_path_factory.mktemp("panel"), WORKBENCH_RULES_DIR=str(hostile_rules)
    ) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser, dashboard):
    """One session, with every dialog recorded (and dismissed)."""
    page = browser.open(dashboard)
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    return page


@pytest.fixture(scope="module")
def replayed(page, ui_dsn, hostile_rules, replay_file, tmp_path_factory) -> Iterator[Process]:
    """The replay worker, started once the page is open (so its toasts are news)."""
    args = ["run", "--source", "replay", str(replay_file), "--rate", "4", "--batch-rows", "2"]
    worker = Process(
        [sys.executable, "-m", "workbench", *args],
        _env(ui_dsn, WORKBENCH_RULES_DIR=str(hostile_rules)),
        tmp_path_factory.mktemp("worker") / "worker.log",
    )
    try:
        yield worker
    finally:
        worker.kill()


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


def assert_nothing_ran(page, browser) -> None:
    canary = page.evaluate(CANARY_JS)
    assert canary == {"pwned": None, "found": []}, canary
    assert page.dialogs == [], page.dialogs
    browser.check()  # clean console, no request to another server (the 127.0.0.1:9 image)


def cells(page, css: str) -> dict[str, list]:
    """Every column the browser holds in a Tabulator (rows out of view included)."""
    return page.evaluate(
        """(css) => {
          for (const m of Bokeh.documents[0].all_models)
            if (String(m.type).endsWith("DataTabulator") && m.css_classes.includes(css))
              return Object.fromEntries(
                Object.entries(m.source.data).map(([k, v]) => [k, Array.from(v)]));
          return null;
        }""",
        css,
    )


def shot(page, screenshots: Path, name: str) -> None:
    page.screenshot(path=screenshots / f"hostile-{name}.png", full_page=True)


# -- Live ----------------------------------------------------------------------------------


def test_live_page_shows_hostile_transactions_as_text(page, replayed, browser, ui_dsn, screenshots):
    # The page is not the server's first session (the dashboard fixture's readiness check
    # was): toasts must work in every session, not only the first.
    toast = page.locator(".wb-toast").first
    expect(toast).to_contain_text("High risk", timeout=WAIT_S * 1000)
    text = toast.inner_text()
    assert any(f"card {c}," in text for c in CORPUS), text  # the card id, literally
    # Over the page in its bottom-right corner, whichever way the page is scrolled.
    box, viewport = toast.bounding_box(), page.viewport_size
    assert box is not None and viewport is not None
    assert viewport["width"] - 60 < box["x"] + box["width"] <= viewport["width"], box
    assert viewport["height"] - 60 < box["y"] + box["height"] <= viewport["height"], box
    page.screenshot(path=screenshots / "hostile-toast.png")  # the viewport, with the toast
    # It goes by itself after its time (the next toast comes 10 s after it at the earliest).
    expect(toast).to_be_hidden(timeout=(TOAST_SHOWN_MS + 3000))
    assert replayed.wait(WAIT_S) == 0, replayed.tail()
    stored = query(ui_dsn, "SELECT count(*) FROM transactions")[0][0]
    assert stored == len(CORPUS)
    dead = query(ui_dsn, "SELECT count(*) FROM dead_letters")[0][0]
    assert dead == 1  # the 10,000-character card id
    table = page.locator(".live-transactions")
    for text in CORPUS[:4]:
        expect(table).to_contain_text(text, timeout=UPDATE_S * 1000)
    expect(page.locator(".alert-feed")).to_contain_text(CORPUS[1])
    # The map: every transaction at one place; the mouse on it shows the hover tooltip.
    xy = page.evaluate(POINT_JS, ["Recent transactions (colour: band)", "lon", "lat"])
    page.mouse.move(xy["x"], xy["y"])
    tooltip = page.locator(".bk-tooltip-content").first
    expect(tooltip).to_contain_text("card", timeout=10_000)
    tip = tooltip.inner_text()
    assert sum(c in tip for c in CORPUS) >= 3, tip  # the card ids, literally
    assert "1,234.50" in tip and "e+" not in tip, tip  # the amount, not 1.235e+3
    shot(page, screenshots, "live")
    assert_nothing_ran(page, browser)


# -- the rule-error banner -------------------------------------------------------------------


def test_a_refused_rule_load_is_shown_as_text(page, browser, ui_dsn, hostile_rules, screenshots):
    texts = {
        f"rules/{p.name}": p.read_text(encoding="utf-8") for p in sorted(hostile_rules.iterdir())
    }
    texts["rules/broken.yaml"] = BROKEN_YAML.format(key=_quoted(CORPUS[0]))
    with pytest.raises((RuleError, RuleSetError)) as refused:
        parse_rules(texts)
    error = f"{refused.value}\n{CORPUS[1]}"  # the watcher stores str(exc)
    with psycopg.connect(ui_dsn, autocommit=True) as conn:
        rule_sets.record(conn, CORPUS[2], texts, CORPUS[4], "rejected", error)
    banner = page.locator(".rules-banner")
    expect(banner).to_be_visible(timeout=UPDATE_S * 1000)
    expect(banner).to_contain_text("Rule change refused")
    for text in (CORPUS[0], CORPUS[1], CORPUS[2]):
        expect(banner).to_contain_text(text)
    expect(page.locator(".health")).to_contain_text(CORPUS[0])
    shot(page, screenshots, "banner")
    assert_nothing_ran(page, browser)


# -- Alerts ----------------------------------------------------------------------------------


def test_alerts_page_shows_hostile_alerts_as_text(page, browser, ui_dsn, screenshots):
    tab(page, "Alerts")
    row = page.locator(".alert-queue .tabulator-row").first
    row.wait_for(timeout=UPDATE_S * 1000)
    button = page.get_by_role("button", name="False positive")
    for attempt in range(3):  # a click while the queue reloads can be lost (see the other UI test)
        row.click()
        try:
            expect(button).to_be_enabled(timeout=UPDATE_S * 1000 // 3)
            break
        except AssertionError:
            if attempt == 2:
                raise
    summary = page.locator(".alert-summary")
    alert_id = int(summary.locator("div").first.inner_text().split()[1])
    ((card, tx_id, terminal, merchant, country, channel, device),) = query(
        ui_dsn,
        "SELECT a.card_id, t.tx_id, t.terminal_id, t.merchant_category, t.country, t.channel,"
        " t.device_id FROM alerts a JOIN transactions t USING (tx_id) WHERE a.id = %s",
        (alert_id,),
    )
    for text in (card, tx_id, terminal, merchant, country, channel, device):
        expect(summary).to_contain_text(text)
    explanation = page.locator(".alert-explanation")
    expect(explanation).to_contain_text("hostile_text")
    described = cells(page, "alert-explanation")["description"]
    assert LONG in described and any(CORPUS[0] in d for d in described)
    expect(explanation).to_contain_text(CORPUS[0])
    expect(page.locator(".alert-attached")).to_contain_text(tx_id)
    expect(page.locator(".card-history")).to_contain_text(merchant)
    # The Alerts tab is the case queue: one case per hostile card, shown as text.
    assert set(cells(page, "case-queue")["card_id"]) == set(CORPUS)
    expect(page.locator(".case-header")).to_contain_text(card)
    shot(page, screenshots, "alerts")

    analyst = page.get_by_label("Analyst")
    if analyst.count():  # a login may replace the typed name (the user is then the session's)
        analyst.fill(CORPUS[9])
        analyst.press("Enter")
    page.get_by_label("Notes").fill(LONG)
    button.click()
    message = page.locator(".alert-message")
    expect(message).to_contain_text(
        f"Alert {alert_id} closed as False positive by ", timeout=UPDATE_S * 1000
    )
    assignee = query(ui_dsn, "SELECT assignee, notes FROM alerts WHERE id = %s", (alert_id,))[0]
    assert assignee[1] and LONG.startswith(assignee[1])  # the text area keeps 5,000 characters
    expect(message).to_contain_text(assignee[0])
    expect(summary).to_contain_text(f"false_positive by {assignee[0]}")
    assert_nothing_ran(page, browser)


# -- History ---------------------------------------------------------------------------------


def test_history_card_drill_down_shows_hostile_ids_as_text(page, browser, screenshots):
    tab(page, "History")
    expect(page.locator(".history-message")).to_contain_text(
        f"{len(CORPUS)} transactions", timeout=UPDATE_S * 1000
    )
    card = page.get_by_label("Card", exact=True)
    drill = page.get_by_role("button", name="Drill down")
    card.fill(CORPUS[8])  # braces: a HoloViews title is a format string
    drill.click()
    card_table = page.locator(".history-card")
    for text in CORPUS[10:13]:  # its merchant, country and channel
        expect(card_table).to_contain_text(text, timeout=UPDATE_S * 1000)
    # The plot's title is the card id as typed (a HoloViews title is a format string), and
    # its hover tooltip shows the ids as text.
    title = f"Card {CORPUS[8]}: amount over time"
    wait_until(lambda: page.evaluate(POINT_JS, [title, "ts", "amount"]) is not None, UPDATE_S)
    xy = page.evaluate(POINT_JS, [title, "ts", "amount"])
    page.mouse.move(xy["x"], xy["y"])
    tooltip = page.locator(".bk-tooltip-content").first
    expect(tooltip).to_contain_text(CORPUS[8], timeout=10_000)
    missing = CORPUS[1] + " " + LONG[:200]
    card.fill(missing)
    drill.click()
    expect(page.get_by_text("No transactions of card")).to_contain_text(
        missing, timeout=UPDATE_S * 1000
    )
    shot(page, screenshots, "history")
    assert_nothing_ran(page, browser)


# -- Rules -----------------------------------------------------------------------------------


def test_rule_editor_shows_hostile_errors_history_and_diff_as_text(page, browser, screenshots):
    tab(page, "Rules")
    ace = page.locator(".rule-editor .ace_editor")
    wait_for_editor_text(ace, "rules:", UPDATE_S)
    ace.evaluate(
        "(el, text) => el.env.editor.setValue(text, -1)",
        BROKEN_YAML.format(key=_quoted(CORPUS[3])),
    )
    page.locator(".bk-btn", has_text="Validate").click()
    expect(page.locator(".editor-message")).to_contain_text("Refused", timeout=UPDATE_S * 1000)
    expect(page.locator(".editor-errors")).to_contain_text(CORPUS[3], timeout=UPDATE_S * 1000)
    history = page.locator(".editor-history")
    expect(history).to_contain_text(CORPUS[2])  # the rejected version's name
    expect(history).to_contain_text(CORPUS[4])  # its author
    options = page.locator("select").evaluate_all(
        "els => els.flatMap(s => Array.from(s.options, o => o.textContent))"
    )
    assert any(CORPUS[2] in o and CORPUS[4] in o for o in options), options
    page.get_by_role("button", name="Diff").click()
    diff = page.locator(".editor-diff")
    expect(diff).to_contain_text("+++", timeout=UPDATE_S * 1000)
    expect(diff).to_contain_text(f"+    '{_quoted(CORPUS[0])}': 1")
    expect(diff).to_contain_text("+# <script>window.__pwned=9</script>")
    shot(page, screenshots, "rules")
    assert_nothing_ran(page, browser)


def test_nothing_ran_in_a_second_session(browser, dashboard, screenshots) -> None:
    """A session opened afterwards starts from the stored state (toast-free, banner up)."""
    fresh = browser.open(dashboard)
    fresh.dialogs = []
    fresh.on("dialog", lambda d: (fresh.dialogs.append(d.message), d.dismiss()))
    expect(fresh.locator(".rules-banner")).to_contain_text(CORPUS[2], timeout=UPDATE_S * 1000)
    expect(fresh.locator(".live-transactions")).to_contain_text(CORPUS[5], timeout=UPDATE_S * 1000)
    assert_nothing_ran(fresh, browser)
