"""Why, with numbers: the evidence stored with an alerted decision is exactly what the rules
read in the stream, and equals the point-in-time recomputation over the stored history."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from workbench.features.engine import compute_features
from workbench.rules import load_rules
from workbench.schema import NAMES
from workbench.scoring.detector import Detector
from workbench.settings import Settings
from workbench.sources.base import create_source
from workbench.storage import BatchWriter, evidence

pytestmark = pytest.mark.integration


def test_stored_evidence_equals_the_recomputed_features(conn):
    ruleset = load_rules("rules")
    detector = Detector(ruleset)
    source = create_source("simulator", settings=Settings.load({"WORKBENCH_SEED": "11"}))
    writer = BatchWriter(conn)
    frames = []
    for _ in range(25):
        scored = detector.process(source.next_batch())
        writer.write(scored, alert_min_band=ruleset.alert.min_band)
        frames.append(scored.frame)
    history = pd.concat(frames, ignore_index=True)
    stored = conn.execute(
        "SELECT h.alert_id, h.tx_id, h.rules, e.evidence FROM alert_hits h"
        " JOIN alert_evidence e USING (tx_id)"
    ).fetchall()
    alerted = conn.execute("SELECT count(*) FROM alert_hits").fetchone()[0]
    assert alerted > 20 and len(stored) == alerted  # every alerted transaction has evidence
    # Offline recomputation over the whole history (point in time, as a backtest does).
    offline = compute_features(ruleset.features, history[list(NAMES)])
    by_tx = history.set_index("tx_id")
    offline.index = history["tx_id"]
    rules = {rule.id: rule for rule in ruleset.rules}
    compared = 0
    for _alert, tx_id, points, found in stored:
        assert set(found) == set(points)  # the fired rules, and only those
        for rule_id, names in found.items():
            assert set(names) == set(rules[rule_id].expr.fields)
            for name, value in names.items():
                expected = offline.at[tx_id, name] if name in offline else by_tx.at[tx_id, name]
                compared += 1
                if expected is None or (isinstance(expected, float) and math.isnan(expected)):
                    assert value is None, (tx_id, name, value)
                elif isinstance(expected, bool | np.bool_):
                    assert value is bool(expected), (tx_id, name)
                elif isinstance(expected, str):
                    assert value == expected
                else:
                    assert value == pytest.approx(float(expected), rel=1e-12), (tx_id, name)
    assert compared > 50
    # The long form the alert detail reads.
    alert_id = stored[0][0]
    long = evidence.of_alert(conn, alert_id)
    assert len(long) and set(long.columns) == {"tx_id", "ts", "rule_id", "points", "name", "value"}
    assert (long["points"] > 0).all()
    first = evidence.of_transaction(conn, stored[0][1])
    assert json.dumps(first, sort_keys=True) == json.dumps(stored[0][3], sort_keys=True)


def test_a_replayed_batch_adds_no_evidence(conn):
    ruleset = load_rules("rules")
    source = create_source("simulator", settings=Settings.load({"WORKBENCH_SEED": "5"}))
    batches = [source.next_batch() for _ in range(10)]
    writer = BatchWriter(conn)
    for batch in batches:
        writer.write(Detector(ruleset).process(batch))
    before = conn.execute("SELECT count(*), sum(length(evidence::text)) FROM alert_evidence")
    before = before.fetchone()
    for batch in batches:  # replay: the staging path, nothing new stored
        writer.write(Detector(ruleset).process(batch))
    after = conn.execute("SELECT count(*), sum(length(evidence::text)) FROM alert_evidence")
    assert after.fetchone() == before and before[0] > 0


def test_timeline_is_bounded_on_both_sides(conn):
    ruleset = load_rules("rules")
    source = create_source("simulator", settings=Settings.load({"WORKBENCH_SEED": "3"}))
    writer = BatchWriter(conn)
    for _ in range(5):
        writer.write(Detector(ruleset).process(source.next_batch()))
    card, at = conn.execute(
        "SELECT card_id, ts FROM transactions GROUP BY card_id, ts"
        " ORDER BY count(*) OVER (PARTITION BY card_id) DESC, ts LIMIT 1 OFFSET 3"
    ).fetchone()
    line = evidence.timeline(conn, card, at, before=2, after=1)
    assert (line["card_id"] == card).all()
    assert (line["ts"] <= at).sum() <= 2 and (line["ts"] > at).sum() <= 1
    assert line["ts"].is_monotonic_increasing
