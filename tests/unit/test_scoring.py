"""The scorer's output contract: clipped scores, bands, long-format hits, version, errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from workbench.rules import parse_rules
from workbench.scoring.scorer import Scorer

RULES = textwrap.dedent("""\
    bands: {medium: 40, high: 70}
    features:
      card_tx_10m: {agg: count, by: card_id, window: 10m}
    rules:
      - id: big
        when: amount > 100
        score: 60
      - id: busy
        when: card_tx_10m >= 3
        score: 30
      - id: ratio
        when: amount / card_tx_10m > 50
        score: 25
      - id: tiny
        when: amount < 1
        score: -10
    """)


def test_scores_bands_hits_and_errors():
    scorer = Scorer(parse_rules({"r.yaml": RULES}))
    amount = np.array([500.0, 5.0, 0.5, 150.0, 20.0])
    tx = np.array([4.0, 0.0, 0.0, 0.0, 5.0])
    batch = pd.DataFrame({"amount": amount}, index=[10, 11, 12, 13, 14])
    scores, hits, errors = scorer.score(batch, {"card_tx_10m": tx})

    points = np.array([60.0, 30.0, 25.0, -10.0])
    hit = np.column_stack([amount > 100, tx >= 3, (tx > 0) & (amount / np.where(tx, tx, 1) > 50),
                           amount < 1])  # fmt: skip
    raw = hit @ points
    # the sum of the points of the rules that hit, clipped to 0..100
    assert scores["risk_score"].tolist() == np.clip(raw, 0, 100).tolist() == [100, 0, 0, 60, 30]
    assert scores["band"].tolist() == ["High", "Low", "Low", "Medium", "Low"]
    assert list(scores.index) == [10, 11, 12, 13, 14]
    assert set(scores["rule_set_version"]) == {scorer.version}
    # one row per (transaction, rule hit), by transaction then in rule order
    r, c = np.nonzero(hit)
    assert hits["row"].tolist() == r.tolist() == [0, 0, 0, 2, 3, 4]
    assert hits["rule_id"].tolist() == [["big", "busy", "ratio", "tiny"][j] for j in c]
    assert hits["points"].tolist() == points[c].tolist()
    # amount / 0 in three rows: the rule does not hit there, and the rows are counted
    assert errors == {"ratio": 3}


def test_features_as_a_frame_or_as_arrays_score_the_same():
    scorer = Scorer(parse_rules({"r.yaml": RULES}))
    rng = np.random.default_rng(0)
    batch = pd.DataFrame({"amount": rng.uniform(0, 300, 200)})
    feats = {"card_tx_10m": rng.integers(0, 6, 200).astype(float)}
    a = scorer.score(batch, feats)
    b = scorer.score(batch, pd.DataFrame(feats))
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2]
    # a second batch of another size gets its own version column
    small = scorer.score(batch.iloc[:3], {k: v[:3] for k, v in feats.items()})[0]
    assert small["rule_set_version"].tolist() == [scorer.version] * 3
