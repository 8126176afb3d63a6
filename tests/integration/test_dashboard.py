"""The dashboard's server side against a real PostgreSQL: the LISTEN feed, the alerts and
history pages (no browser: views are driven through their methods), and ``workbench up``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from conftest import build_scored

from workbench.auth.roles import Identity, Role
from workbench.dashboard.alerts_page import AlertsView
from workbench.dashboard.feed import Feed
from workbench.dashboard.history import HistoryView
from workbench.dashboard.hub import Hub
from workbench.rules import load_rules
from workbench.storage import open_alert_count, record_rule_set, write_batch

pytestmark = pytest.mark.integration

ALICE = Identity("alice", Role.ANALYST)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def feed(db_dsn: str) -> Iterator[Feed]:
    running = Feed(Hub(), db_dsn).start()
    try:
        yield running
    finally:
        running.stop()


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_feed_brings_each_commit_into_the_hub(feed, conn):
    assert feed.connected.wait(15)
    write_batch(conn, build_scored(300, prefix="a"), worker="w1", source="test")
    hub = feed.hub
    wait_for(lambda: hub.delta().kpis.processed == 300, what="the first batch")
    write_batch(conn, build_scored(200, prefix="b", start="2026-01-01T01:00:00Z"), worker="w1")
    wait_for(lambda: hub.delta().kpis.processed == 500, what="the second batch")
    wait_for(lambda: not hub.delta().transactions.empty, what="recent rows")
    wait_for(lambda: hub.delta().kpis.open_alerts == open_alert_count(conn), what="open alerts")
    d = hub.delta()
    stored = {r[0] for r in conn.execute("SELECT tx_id FROM transactions").fetchall()}
    assert set(d.transactions["tx_id"]) <= stored
    assert d.bands["High"] == count(conn, "transactions WHERE band = 'High'")
    assert d.health.database == "ok"
    assert d.health.workers == ("w1",)
    assert d.alerts and all(a.tx_id in stored for a in d.alerts)


def test_a_hub_started_later_begins_from_the_database_totals(conn, db_dsn):
    write_batch(conn, build_scored(250, scores=[0.0] * 250), worker="w1")
    running = Feed(Hub(), db_dsn).start()
    try:
        assert running.connected.wait(15)
        wait_for(lambda: running.hub.delta().kpis.processed == 250, what="the totals")
    finally:
        running.stop()


def test_the_feed_reconnects_after_its_connections_are_killed(feed, conn):
    assert feed.connected.wait(15)
    write_batch(conn, build_scored(100, prefix="a", scores=[0.0] * 100))
    wait_for(lambda: feed.hub.delta().kpis.processed == 100, what="the first batch")
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    wait_for(lambda: feed.hub.delta().health.database != "ok", what="the outage to show")
    wait_for(lambda: feed.connected.is_set(), what="the reconnection")
    wait_for(lambda: feed.hub.delta().health.database == "ok", what="health back to ok")
    write_batch(conn, build_scored(50, prefix="b", scores=[0.0] * 50))
    # totals are re-read on reconnecting, so nothing is counted twice or lost
    wait_for(lambda: feed.hub.delta().kpis.processed == 150, what="the batch after")
    time.sleep(1.0)
    assert feed.hub.delta().kpis.processed == 150


@pytest.fixture
def scored_with_real_rules(conn):
    """A batch with hits of real rule ids, scored by a recorded real rule set."""
    ruleset = load_rules("rules")
    record_rule_set(conn, ruleset.version, ruleset.texts, author="test", status="accepted")
    batch = build_scored(200, version=ruleset.version, cards=[f"card{i % 5}" for i in range(200)])
    ids = {"big_amount": "very_large_amount", "new_country": "impossible_travel"}
    batch.hits["rule_id"] = batch.hits["rule_id"].map(ids).astype("str")
    write_batch(conn, batch)
    return ruleset


def test_alerts_page_explains_and_closes_an_alert(conn, db_dsn, scored_with_real_rules):
    view = AlertsView(db_dsn, ALICE)
    asyncio.run(view.refresh())
    queue = view.queue.value
    assert len(queue) == open_alert_count(conn) > 0
    alert_id = int(queue["id"].iloc[0])
    asyncio.run(view.select(alert_id))
    explained = view.explanation.value
    rules = {r.id: r for r in scored_with_real_rules.rules}
    assert set(explained["rule"]) <= {"very_large_amount", "impossible_travel"}
    assert len(explained) >= 1
    for row in explained.itertuples():
        assert row.description == rules[row.rule].description
        assert row.when == rules[row.rule].when
    points = conn.execute("SELECT rules FROM alerts WHERE id = %s", (alert_id,)).fetchone()[0]
    assert dict(zip(explained["rule"], explained["points"], strict=True)) == points
    assert (
        len(view.attached.value)
        == conn.execute(
            "SELECT count(*) FROM alert_hits WHERE alert_id = %s", (alert_id,)
        ).fetchone()[0]
    )
    assert len(view.card.value) > 0
    assert not view.buttons["false_positive"].disabled

    view.notes.value = "customer confirmed the purchase"
    asyncio.run(view.close("false_positive"))
    row = conn.execute(
        "SELECT status, disposition, assignee, notes, closed_at FROM alerts WHERE id = %s",
        (alert_id,),
    ).fetchone()
    assert row[:4] == ("closed", "false_positive", "alice", "customer confirmed the purchase")
    assert row[4] is not None
    assert alert_id not in set(view.queue.value["id"])
    assert all(b.disabled for b in view.buttons.values())
    assert "closed" in view.message.object


def test_alerts_page_reports_a_missing_database_in_the_page():
    view = AlertsView("postgresql://nobody@127.0.0.1:1/none", ALICE)
    asyncio.run(view.refresh())
    assert "Cannot load alerts" in view.message.object


def test_history_page_buckets_in_sql_and_drills_down_to_a_card(conn, db_dsn):
    write_batch(conn, build_scored(3_000, step_s=1.0))  # 50 minutes of event time
    view = HistoryView(db_dsn)
    asyncio.run(view.load_preset())
    assert view.loaded
    assert "3,000 transactions" in view.message.object
    # bands, scores, alerts (each on its own y axis), transactions
    assert len(view.plots.objects) == 4
    view.card_input.value = "card7"
    asyncio.run(view.load_card())
    assert len(view.card_table.value) == count(conn, "transactions WHERE card_id = 'card7'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_workbench_up_serves_the_dashboard_and_runs_a_worker(conn, db_dsn, tmp_path):
    port = _free_port()
    env = dict(
        os.environ,
        WORKBENCH_DATABASE_URL=db_dsn,
        WORKBENCH_DASHBOARD_PORT=str(port),
        WORKBENCH_RATE="2000",
        WORKBENCH_BATCH_ROWS="500",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "up", "--duration", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def page() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as r:
                    return r.read().decode()
            except OSError:
                return ""

        wait_for(lambda: "Fraud Workbench" in page(), timeout=120, what="the dashboard page")
        wait_for(lambda: count(conn, "transactions") > 0, timeout=60, what="stored rows")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/" in out
    assert "records in" in out  # the worker's own summary: it stopped cleanly


def test_the_health_panel_lists_each_worker_with_its_partitions_and_lag(feed, conn):
    from workbench.dashboard.live_health import HealthPanel

    assert feed.connected.wait(15)
    worker = "w<img src=x onerror=alert(1)>"
    write_batch(conn, build_scored(50, scores=[0.0] * 50), worker=worker, source="kafka://b/t")
    conn.execute("UPDATE pipeline_stats SET partitions = '{0,2}', lag = 7")  # as a Kafka worker
    hub = feed.hub

    def rows():
        return [r[:4] for r in hub.delta().health.worker_rows]

    wait_for(lambda: rows() == [(worker, "kafka://b/t", (0, 2), 7)], what="the worker's row")
    panel = HealthPanel()
    panel.update(hub.delta())
    shown = str(panel.pane.object)
    assert "<td>0, 2</td>" in shown and ">7</td>" in shown and "kafka://b/t" in shown
    assert "w&lt;img src=x onerror=alert(1)&gt;" in shown and "<img" not in shown
