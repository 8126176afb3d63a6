"""Rule health and capacity read from a real PostgreSQL agree with the same arithmetic on the
stored history read back as frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import health as rule_health
from workbench.analysis import load_history
from workbench.analysis import rule_health as rh
from workbench.auth.roles import Identity, Role
from workbench.dashboard.actions import Actions
from workbench.scoring.evaluate import stored_hits
from workbench.scoring.metrics import labels
from workbench.storage import connect, shared_store, write_batch

pytestmark = pytest.mark.integration

ANALYST = Identity("ana", Role.ANALYST, provider="basic")


def _seed(dsn: str, make_batch) -> None:
    # 2,000 transactions, one every 5 minutes (about 7 days) on 50 cards.
    with connect(dsn) as conn:
        write_batch(conn, make_batch(2000, step_s=300.0), alert_dedup_s=600.0)


def test_health_from_the_database_matches_the_frames(db_dsn, make_batch) -> None:
    _seed(db_dsn, make_batch)
    store = shared_store(db_dsn)
    health = rule_health(days=30, rule_ids=["big_amount", "new_country", "silent"], conn=store)
    history = load_history(dsn=db_dsn)
    hits = stored_hits(history["rule_hits"], ["big_amount", "new_country"])
    expected = rh.fire_rates(rh.counts_from_hits(hits, history["ts"]), ["silent"])
    pd.testing.assert_frame_equal(
        health.rates, expected, check_names=False, check_index_type=False, check_freq=False
    )
    per_rule = health.counts.groupby("rule_id")["hits"].sum()
    assert per_rule["big_amount"] == 1200  # scores 40..99 of each 0..99
    assert per_rule["new_country"] == 600
    assert health.status.loc["silent", "status"] == "never fires"
    assert health.status.loc["big_amount", "status"] == "ok"
    # every new_country hit is a big_amount hit (score >= 70 implies >= 40)
    assert health.overlap.loc["new_country", "big_amount"] == 1.0
    assert health.overlap.loc["big_amount", "new_country"] == pytest.approx(
        hits["new_country"].sum() / hits["big_amount"].sum()
    )
    assert health.alarms.empty  # a steady stream raises no drift alarm


def test_capacity_matches_the_recommendation_on_the_history(db_dsn, make_batch) -> None:
    _seed(db_dsn, make_batch)
    history = load_history(dsn=db_dsn)
    cd = rh.card_days_of(
        history["card_id"], history["ts"], history["risk_score"], labels(history["is_fraud"])
    )
    grid = np.arange(0, 101, 5.0)
    for budget in (5, 20):
        got = rh.capacity(budget, days=30, thresholds=grid, dsn=db_dsn)
        want = rh.recommend(cd, budget, thresholds=grid)
        assert (got.threshold, got.cp_at_k) == (want.threshold, want.cp_at_k)
        assert got.alerts_per_day <= budget

    # Analyst truth is its own: nothing labelled yet, then one disposition of fraud.
    none = rh.capacity(5, days=30, truth="analyst", dsn=db_dsn)
    assert none.curve["cp_at_k"].max() == 0
    with connect(db_dsn) as conn:
        first = conn.execute("SELECT min(id) FROM alerts").fetchone()[0]
    Actions(ANALYST, db_dsn).dispose(first, "confirmed_fraud")
    one = rh.capacity(5, days=30, truth="analyst", dsn=db_dsn)
    # the labelled card-days are all fraud: everything alerted at 0 is precise and complete
    assert (one.curve["precision"].iloc[0], one.curve["recall"].iloc[0]) == (1.0, 1.0)
    assert none.curve["precision"].isna().all()
