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


def test_rules_of_a_group_combine_by_max_and_groups_add_up():
    rules = parse_rules(
        {
            "r.yaml": textwrap.dedent("""\
        rules:
          - {id: v1, when: amount > 10, score: 20, group: velocity}
          - {id: v2, when: amount > 20, score: 35, group: velocity}
          - {id: v3, when: amount > 30, score: 25, group: Velocity}
          - {id: g1, when: amount > 20, score: 30, group: geo}
          - {id: g2, when: amount > 40, score: -5, group: geo}
          - {id: lone, when: amount > 30, score: 40}
          - {id: neg, when: amount < 5, score: -10, group: trust}
        """)
        }
    )
    scorer = Scorer(rules)
    amount = np.array([1.0, 15.0, 25.0, 35.0, 45.0])
    scores, hits, _ = scorer.score(pd.DataFrame({"amount": amount}), {})
    # 1: trust -10 -> clipped 0; 15: v1 20; 25: max(20, 35) + 30 = 65;
    # 35: max(20, 35, 25) + 30 + 40 = 105 -> 100; 45: 35 + max(30, -5) + 40 = 105 -> 100
    assert scores["risk_score"].tolist() == [0.0, 20.0, 65.0, 100.0, 100.0]
    assert scores["band"].tolist() == ["Low", "Low", "Medium", "High", "High"]
    # every hit is still recorded with its own points (which rules matched, and how much each
    # would give)
    assert hits[hits["row"] == 2]["rule_id"].tolist() == ["v1", "v2", "g1"]
    negative = Scorer(
        parse_rules(
            {
                "r.yaml": textwrap.dedent("""\
        rules:
          - {id: a, when: amount > 0, score: -10, group: trust}
          - {id: b, when: amount > 1, score: -30, group: trust}
          - {id: c, when: amount > 0, score: 50}
        """)
            }
        )
    )
    # the largest of negative points is the one nearest 0
    got = negative.score(pd.DataFrame({"amount": [0.5, 2.0]}), {})[0]["risk_score"]
    assert got.tolist() == [40.0, 40.0]
