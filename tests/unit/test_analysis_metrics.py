"""Detection metrics on hand-made histories whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import metrics as m
from workbench.analysis.backtest import live_hits, stored_rule_ids


def ts(*texts: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(texts), utc=True)).astype("datetime64[ns, UTC]")


def test_labels_keep_unknown_apart() -> None:
    label = m.labels(pd.array([True, False, None, True], dtype="boolean"))
    assert label.tolist() == [1, 0, -1, 1]


def test_rates_by_hand() -> None:
    # 10 labelled rows: fraud at 0..3; flagged 0, 1, 4, 5, 6; row 9 has no label but is flagged.
    label = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, -1], dtype=np.int8)
    flagged = np.zeros(10, bool)
    flagged[[0, 1, 4, 5, 6, 9]] = True
    r = m.rates(flagged, label)
    assert (r["tp"], r["fp"], r["fn"], r["flagged"]) == (2, 3, 2, 6)
    assert r["precision"] == pytest.approx(2 / 5)
    assert r["recall"] == pytest.approx(2 / 4)
    assert r["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)


def test_rates_without_fraud_or_flags_are_undefined_not_zero() -> None:
    r = m.rates(np.zeros(3, bool), np.zeros(3, np.int8))
    assert math.isnan(r["precision"]) and math.isnan(r["recall"]) and math.isnan(r["f1"])
    r = m.rates(np.zeros(3, bool), np.array([1, 0, 0], np.int8))
    assert math.isnan(r["precision"]) and r["recall"] == 0.0 and r["f1"] == 0.0


def test_rule_metrics_per_rule() -> None:
    label = np.array([1, 1, 0, 0, 1, 0], np.int8)
    hits = pd.DataFrame(
        {
            "a": [True, True, True, False, False, False],  # tp 2, fp 1, fn 1
            "b": [False, False, False, True, True, False],  # tp 1, fp 1, fn 2
        }
    )
    out = m.rule_metrics(hits, label)
    assert out.loc["a", ["hits", "tp", "fp", "fn"]].tolist() == [3, 2, 1, 1]
    assert out.loc["a", "precision"] == pytest.approx(2 / 3)
    assert out.loc["a", "recall"] == pytest.approx(2 / 3)
    assert out.loc["b", "precision"] == pytest.approx(1 / 2)
    assert out.loc["b", "recall"] == pytest.approx(1 / 3)
    assert out.loc["b", "f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_band_metrics_and_migration() -> None:
    live = np.array(["Low", "Low", "Medium", "High", "High", "Low"])
    cand = np.array(["Low", "High", "Medium", "Medium", "High", "Low"])
    label = np.array([0, 1, 0, 1, 1, -1], np.int8)
    mig = m.band_migration(live, cand)
    assert mig.loc["Low"].tolist() == [2, 0, 1]
    assert mig.loc["Medium"].tolist() == [0, 1, 0]
    assert mig.loc["High"].tolist() == [0, 1, 1]
    assert int(mig.to_numpy().sum()) == 6
    bands = m.band_metrics(cand, label)
    assert bands.loc["High", ["transactions", "fraud", "genuine"]].tolist() == [2, 2, 0]
    assert bands.loc["Medium", "precision"] == pytest.approx(1 / 2)
    assert bands.loc["Low", "precision"] == 0.0  # one genuine, one unknown
    # "Medium or higher" flags rows 1..4: 3 of the 3 frauds.
    assert bands.loc["Medium", "recall_at_least"] == 1.0
    assert bands.loc["High", "recall_at_least"] == pytest.approx(2 / 3)


def test_scenario_metrics_one_scenario_against_genuine() -> None:
    label = np.array([1, 1, 1, 1, 0, 0, 0, 0], np.int8)
    scenario = np.array(["atm", "atm", "atm", "ato", "", "", "", ""])
    flagged = np.array([True, True, False, False, True, False, False, False])
    out = m.scenario_metrics(flagged, label, scenario)
    assert out.loc["atm", ["fraud", "detected"]].tolist() == [3, 2]
    assert out.loc["atm", "recall"] == pytest.approx(2 / 3)
    assert out.loc["atm", "precision"] == pytest.approx(2 / 3)  # 2 detected, 1 false alarm
    assert out.loc["ato", "recall"] == 0.0 and out.loc["ato", "f1"] == 0.0


def test_card_precision_at_k_by_hand() -> None:
    # Day 1: cards by their max score: c1 90 (fraud), c2 80, c3 70 (fraud), c4 10 (fraud).
    # Day 2: c1 50, c2 95 (fraud), c5 95; ties broken by card id: c2 before c5.
    frame = pd.DataFrame(
        {
            "card": ["c1", "c1", "c2", "c3", "c4", "c1", "c2", "c5"],
            "ts": ts(
                "2026-01-01 01:00",
                "2026-01-01 02:00",
                "2026-01-01 03:00",
                "2026-01-01 04:00",
                "2026-01-01 23:59",
                "2026-01-02 00:00",
                "2026-01-02 05:00",
                "2026-01-02 06:00",
            ),
            "score": [20.0, 90.0, 80.0, 70.0, 10.0, 50.0, 95.0, 95.0],
            # c1's fraud is its low-scored first row: the card still counts as a fraud card.
            "label": [1, 0, 0, 1, 1, 0, 1, 0],
        }
    )
    label = frame["label"].to_numpy(np.int8)
    cp2 = m.card_precision_at_k(frame["card"], frame["ts"], frame["score"], label, k=2)
    assert cp2.tolist() == [0.5, 0.5]  # day 1: c1, c2 -> 1 of 2; day 2: c2, c5 -> 1 of 2
    cp3 = m.card_precision_at_k(frame["card"], frame["ts"], frame["score"], label, k=3)
    assert cp3.tolist() == pytest.approx([2 / 3, 1 / 3])
    cp10 = m.card_precision_at_k(frame["card"], frame["ts"], frame["score"], label, k=10)
    assert cp10.tolist() == pytest.approx([3 / 10, 1 / 10])  # always divided by k
    assert [d.strftime("%Y-%m-%d") for d in cp2.index] == ["2026-01-01", "2026-01-02"]
    with pytest.raises(ValueError):
        m.card_precision_at_k(frame["card"], frame["ts"], frame["score"], label, k=0)


def test_alerts_dedup_per_card_like_the_writer() -> None:
    frame = pd.DataFrame(
        {
            "card": ["a", "a", "a", "b", "a", "b"],
            "ts": ts(
                "2026-01-01 10:00",
                "2026-01-01 10:05",  # within 10 min of the previous: same alert
                "2026-01-01 10:14",  # within 10 min of 10:05: same alert
                "2026-01-01 10:15",
                "2026-01-02 09:00",  # new day, new alert
                "2026-01-03 09:00",  # not flagged
            ),
        }
    )
    flagged = np.array([True, True, True, True, True, False])
    opened = m.alert_sessions(frame["card"], frame["ts"], flagged, dedup_s=600)
    assert opened.tolist() == [0, 3, 4]
    per_day = m.alerts_per_day(frame["card"], frame["ts"], flagged, dedup_s=600)
    assert per_day.tolist() == [2, 1, 0]
    assert m.alerts_per_day(frame["card"], frame["ts"], flagged, dedup_s=1).tolist() == [4, 1, 0]


def test_threshold_sweep_by_hand() -> None:
    score = np.array([0.0, 10.0, 40.0, 70.0, 90.0, 90.0])
    label = np.array([0, 0, 1, 0, 1, -1], np.int8)
    out = m.threshold_sweep(score, label, [0, 40, 80, 100], days=2.0).set_index("threshold")
    assert out["flagged"].tolist() == [6, 4, 2, 0]
    assert out["tp"].tolist() == [2, 2, 1, 0]
    assert out["fp"].tolist() == [3, 1, 0, 0]
    assert out.loc[40, "precision"] == pytest.approx(2 / 3)
    assert out.loc[80, "recall"] == pytest.approx(1 / 2)
    assert out.loc[80, "flagged_per_day"] == 1.0
    assert math.isnan(out.loc[100, "precision"]) and out.loc[100, "f1"] == 0.0


def test_live_hits_from_stored_json() -> None:
    text = pd.Series(
        ['{"big": 40, "night": 15}', "{}", '{"night": 15}', '{"big_amount": 5}'], dtype="str"
    )
    assert stored_rule_ids(text) == ["big", "big_amount", "night"]
    hits = live_hits(text)
    assert hits["big"].tolist() == [True, False, False, False]  # not fooled by big_amount
    assert hits["night"].tolist() == [True, False, True, False]
    assert live_hits(text, ["absent"])["absent"].tolist() == [False] * 4
