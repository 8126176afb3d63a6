"""The Lists page and the evidence panel, driven through their callbacks against a real
PostgreSQL (the browser is bypassed: a viewer's disabled buttons would stop an honest user,
a crafted call must be refused on the server all the same)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pandas as pd
import pytest

from workbench.auth.roles import Identity, Role
from workbench.dashboard.evidence import EvidenceView, history_query, parse_history_query
from workbench.dashboard.lists_page import ListsView
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.settings import Settings
from workbench.sources.base import create_source
from workbench.storage import BatchWriter, audit, lists
from workbench.storage.store import close_shared

pytestmark = pytest.mark.integration

VIEWER = Identity("vera", Role.VIEWER, provider="basic")
ANALYST = Identity("ana", Role.ANALYST, provider="basic")


@pytest.fixture(autouse=True)
def _no_shared_pools():
    yield
    close_shared()


def test_the_lists_page_adds_removes_snoozes_and_lifts(db_dsn, conn):
    view = ListsView(db_dsn, ANALYST)
    asyncio.run(view.load())
    view.list_name.value = "blocked_countries"
    view.value.value = " fr "
    view.reason.value = "<b>sanctions</b>"
    asyncio.run(view.add())
    assert view.table.value["value"].tolist() == ["FR"]
    assert view.table.value["reason"].tolist() == ["<b>sanctions</b>"]  # text, shown as text
    view.table.selection = [0]
    asyncio.run(view.remove())
    assert view.table.value.empty and lists.entries(conn).empty
    view.rule_id.value, view.kind.value, view.entity.value = "big", "terminal", "T-1"
    view.until.value = datetime(2027, 1, 1)
    view.snooze_reason.value = "terminal under repair"
    asyncio.run(view.snooze())
    assert view.snoozes.value["value"].tolist() == ["T-1"]
    view.snoozes.selection = [0]
    asyncio.run(view.lift())
    assert view.snoozes.value.empty
    actions = audit.recent(conn, 10, outcome="ok")["action"].tolist()
    assert actions == ["rule.snooze", "rule.snooze", "list.edit", "list.edit"]


def test_a_viewer_sees_disabled_controls_and_a_crafted_call_is_refused(db_dsn, conn):
    view = ListsView(db_dsn, VIEWER)
    assert view.add_button.disabled and view.snooze_button.disabled
    view.value.value = "card1"
    asyncio.run(view.add())  # as a crafted websocket message would
    assert "may not edit lists" in view.message.object
    assert lists.entries(conn).empty
    assert audit.recent(conn, 5, outcome="refused")["actor"].tolist() == ["vera"]


def test_hostile_input_on_the_page_is_refused_with_a_message(db_dsn, conn):
    view = ListsView(db_dsn, ANALYST)
    view.value.value = "<img src=x onerror=alert(1)>"
    asyncio.run(view.add())
    assert view.message.object.startswith("Not done: a card value holds")
    assert lists.entries(conn).empty


def test_the_evidence_panel_shows_what_each_rule_saw_and_links_to_history(db_dsn, conn):
    ruleset = load_rules("rules")
    detector = Detector(ruleset)
    source = create_source("simulator", settings=Settings.load({"WORKBENCH_SEED": "11"}))
    writer = BatchWriter(conn)
    for _ in range(15):
        writer.write(detector.process(source.next_batch()))
    alert = conn.execute("SELECT id, card_id, ts FROM alerts ORDER BY id LIMIT 1").fetchone()
    opened = []
    view = EvidenceView(db_dsn, on_history=lambda card, at: opened.append((card, at)))
    rules = {rule.id: rule for rule in ruleset.rules}
    asyncio.run(view.show({"id": alert[0], "card_id": alert[1], "ts": alert[2]}, rules))
    table = view.rules.value
    assert len(table) >= 1 and set(table.columns) == {
        "rule",
        "points",
        "description",
        "evidence",
        "when",
    }
    first = table.iloc[0]
    assert first["when"] == rules[first["rule"]].when
    for name in rules[first["rule"]].expr.fields:
        assert f"{name} = " in first["evidence"]
    timeline = view.timeline.value
    assert "alert" in timeline["side"].tolist()
    assert view.plot.objects  # one time axis, the alert marked
    view.open_history()
    assert opened == [(alert[1], pd.Timestamp(alert[2]).tz_convert("UTC"))]


def test_the_history_query_round_trips_and_refuses_junk():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    query = history_query("card 7&x=<y>", at)
    assert parse_history_query(query) == ("card 7&x=<y>", pd.Timestamp(at))
    assert parse_history_query({"card": [b"c1"], "at": [b"2026-01-02T03:04:05"]}) == (
        "c1",
        pd.Timestamp(at),
    )
    assert parse_history_query("?card=c1&at=not-a-time") is None
    assert parse_history_query("?at=2026-01-01") is None
