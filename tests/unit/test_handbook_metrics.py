"""Card Precision@k with the Fraud Detection Handbook's protocol, and recall per scenario at
every band, on hand-made histories whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import metrics as m


def ts(*texts: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(texts), utc=True)).astype("datetime64[ns, UTC]")


def test_card_precision_handbook_by_hand() -> None:
    """k = 2, three days.

    Day 1: cards by their max score: A 90 (fraud), B 80, C 70 (fraud), D 10 (fraud).
      Nothing known yet: top 2 = A, B -> 1 fraud card / 2 = 0.5. A becomes known.
    Day 2: A 95 (genuine now), C 90 (its fraud is its 20-scored row: any fraud counts,
      the card's score is its max, 90), D 80 (fraud), B 10.
      A is excluded (known): candidates C, D, B; top 2 = C, D -> 2 / 2 = 1.0. C, D known.
      (The daily protocol, without the exclusion: A, C -> 1 / 2 = 0.5.)
    Day 3: C 99 (fraud, but known: excluded), E 50 (fraud): the one candidate, top 2 = E
      -> 1 / 2 = 0.5 (always divided by k). (Daily: C, E -> 2 / 2 = 1.0.)
    Mean over the 3 days: (0.5 + 1.0 + 0.5) / 3 = 2 / 3; daily: (0.5 + 0.5 + 1.0) / 3 = 2 / 3
    too, while the days differ.
    """
    frame = pd.DataFrame(
        {
            "card": ["A", "B", "C", "D", "A", "C", "C", "D", "B", "C", "E"],
            "ts": ts(
                "2018-08-08 01:00",
                "2018-08-08 02:00",
                "2018-08-08 03:00",
                "2018-08-08 23:59",
                "2018-08-09 00:00",
                "2018-08-09 01:00",
                "2018-08-09 02:00",
                "2018-08-09 03:00",
                "2018-08-09 04:00",
                "2018-08-10 05:00",
                "2018-08-10 06:00",
            ),
            "score": [90.0, 80.0, 70.0, 10.0, 95.0, 90.0, 20.0, 80.0, 10.0, 99.0, 50.0],
            "label": [1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1],
        }
    )
    label = frame["label"].to_numpy(np.int8)
    out = m.card_precision_handbook(frame["card"], frame["ts"], frame["score"], label, k=2)
    assert out["cp"].tolist() == [0.5, 1.0, 0.5]
    assert out["detected"].tolist() == [1, 2, 1]
    assert out["excluded"].tolist() == [0, 1, 1]  # A on day 2; C on day 3
    assert out["cards"].tolist() == [4, 3, 1]
    assert out["fraud_cards"].tolist() == [3, 2, 1]  # day 1: A, C, D; day 2: C, D; day 3: E
    assert out["cp"].mean() == pytest.approx(2 / 3)
    assert [d.strftime("%Y-%m-%d") for d in out.index] == ["2018-08-08", "2018-08-09", "2018-08-10"]
    daily = m.card_precision("daily", frame["card"], frame["ts"], frame["score"], label, k=2)
    assert daily.tolist() == [0.5, 0.5, 1.0]
    same = m.card_precision("handbook", frame["card"], frame["ts"], frame["score"], label, k=2)
    assert same.tolist() == [0.5, 1.0, 0.5]
    with pytest.raises(ValueError):
        m.card_precision("weekly", frame["card"], frame["ts"], frame["score"], label, k=2)
    with pytest.raises(ValueError):
        m.card_precision_handbook(frame["card"], frame["ts"], frame["score"], label, k=0)


def test_card_precision_handbook_of_nothing_is_empty() -> None:
    out = m.card_precision_handbook([], ts(), np.array([]), np.array([], np.int8), k=5)
    assert out.empty and list(out.columns) == ["cp", "cards", "fraud_cards", "detected", "excluded"]


def test_scenario_recall_at_every_band() -> None:
    # Scenario "s1": 4 rows scored High, Medium, Medium, Low -> recall >= Medium 3/4,
    # >= High 1/4. Scenario "s2": 2 rows, Low and High -> 1/2, 1/2. The alert decision
    # (flagged) is given apart: here the High rows plus one genuine false alarm.
    label = np.array([1, 1, 1, 1, 1, 1, 0, 0], np.int8)
    scenario = np.array(["s1", "s1", "s1", "s1", "s2", "s2", "", ""])
    band = np.array(["High", "Medium", "Medium", "Low", "Low", "High", "High", "Low"])
    flagged = band == "High"
    out = m.scenario_metrics(flagged, label, scenario, band)
    assert out.loc["s1", ["recall_medium", "recall_high", "recall"]].tolist() == [0.75, 0.25, 0.25]
    assert out.loc["s2", ["recall_medium", "recall_high", "recall"]].tolist() == [0.5, 0.5, 0.5]
    assert out.loc["s1", "precision"] == pytest.approx(1 / 2)  # 1 detected, 1 false alarm
    assert "recall_medium" not in m.scenario_metrics(flagged, label, scenario).columns
