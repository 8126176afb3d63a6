"""The Rules page's rule-health section against a real PostgreSQL: built with the Rules tab,
it shows the same figures as the analysis API, the active rules that never fire, the overlap
and the capacity-aware threshold, and renders to Bokeh models."""

from __future__ import annotations

import asyncio

import pandas as pd
import panel as pn
import pytest

from tests.unit.test_dashboard_live import Clock
from workbench.analysis import capacity, health
from workbench.dashboard.hub import Hub
from workbench.dashboard.rule_health_page import RuleHealthView
from workbench.dashboard.session import EDITOR_TAB, Session
from workbench.rules import load_rules
from workbench.storage import connect, write_batch

pytestmark = pytest.mark.integration


def test_the_rules_tab_shows_rule_health(db_dsn, make_batch, published, rules_dir) -> None:
    with connect(db_dsn) as conn:  # about 7 days, one transaction every 5 minutes
        write_batch(conn, make_batch(2000, step_s=300.0), alert_dedup_s=600.0)
    session = Session(Hub(clock=Clock()), db_dsn)
    asyncio.run(session._open(EDITOR_TAB, None))
    view = session.rule_health
    assert isinstance(view, RuleHealthView) and not view.loaded  # read on Refresh only
    assert "Press Refresh" in view.message.object
    view.refresh.clicks += 1  # outside a server the click runs the load now
    assert view.loaded
    assert any(c is view.layout for c in session.tabs.objects[EDITOR_TAB].select(pn.Column))

    active = [r.id for r in load_rules(rules_dir).enabled_rules]
    want = health(days=14, rule_ids=active, dsn=db_dsn)
    pd.testing.assert_frame_equal(view.health.rates, want.rates)
    status = view.status.value.set_index("rule_id")
    # the seeded history was scored by hand-built hits: every shipped rule is silent in it
    assert set(status.index) == set(active)
    assert (status["status"] == "never fires").all()
    overlap = view.overlap.value.set_index("rule")
    assert overlap.loc["new_country", "big_amount"] == 1.0

    rec = capacity(50, days=7, dsn=db_dsn)
    assert view.recommendation.threshold == rec.threshold
    assert f"to {rec.threshold:g} -&gt;" in view.advice.object  # escaped text
    assert "set bands.high" in view.advice.object
    assert "drift alarm(s)" in view.message.object
    assert len(view.plots.objects) == 3  # fire rates, alerts/day and rates by threshold
    view.truth.value = "analyst"  # no analyst labels: nothing precise, nothing caught
    asyncio.run(view.load())
    assert view.recommendation.truth == "analyst"
    assert view.recommendation.curve["cp_at_k"].max() == 0
    root = view.__panel__().get_root()  # renders to Bokeh models
    assert root is not None


def test_the_section_reports_a_missing_database() -> None:
    view = RuleHealthView("postgresql://127.0.0.1:1/none?connect_timeout=2")
    assert asyncio.run(view.load()) is None
    assert "Cannot read rule health" in view.message.object
