"""Features from stored labels: known only after known_at, superseded versions, stream ==
one batch == a brute-force reference, bounded memory, and the declaration's errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.features import FeatureEngine
from workbench.features.spec import FeatureSpecError, parse_feature
from workbench.schema import coerce

T0 = pd.Timestamp("2024-03-01", tz="UTC")
RATE = parse_feature(
    "term_rate", {"agg": "fraud_rate", "by": "terminal_id", "window": "2h", "labels": "analyst"}
)
COUNT = parse_feature(
    "term_fraud", {"agg": "fraud_count", "by": "terminal_id", "window": "2h", "labels": "analyst"}
)
MERCH = parse_feature(
    "mcc_cb",
    {"agg": "fraud_count", "by": "merchant_category", "window": "1h", "labels": "chargeback"},
)


def batch(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Rows (tx_id, terminal_id, minutes after T0) as a typed batch."""
    frame = pd.DataFrame(
        {
            "tx_id": [r[0] for r in rows],
            "card_id": "c",
            "terminal_id": [r[1] for r in rows],
            "merchant_category": [r[1][:1] for r in rows],
            "ts": [T0 + pd.Timedelta(minutes=r[2]) for r in rows],
            "amount": 1.0,
        }
    )
    typed, dead = coerce(frame)
    assert dead.empty
    return typed


def labels(rows: list[tuple], start_id: int = 1) -> pd.DataFrame:
    """Label rows (tx_id, terminal_id, tx minutes, label, known minutes[, source])."""
    return pd.DataFrame(
        {
            "id": np.arange(start_id, start_id + len(rows), dtype=np.int64),
            "tx_id": [r[0] for r in rows],
            "ts": [T0 + pd.Timedelta(minutes=r[2]) for r in rows],
            "card_id": "c",
            "customer_id": None,
            "terminal_id": [r[1] for r in rows],
            "merchant_category": [r[1][:1] for r in rows],
            "label": [r[3] for r in rows],
            "known_at": [T0 + pd.Timedelta(minutes=r[4]) for r in rows],
            "source": [r[5] if len(r) > 5 else "analyst" for r in rows],
        }
    )


def test_a_terminals_feature_changes_only_after_the_labels_known_at():
    engine = FeatureEngine([RATE, COUNT])
    engine.add_labels(labels([("x0", "T", 0, "fraud", 30)]))
    out = engine.peek(batch([("a", "T", 29), ("b", "T", 30), ("c", "T", 31), ("d", "U", 31)]))
    # known at minute 30: not at 29, not at exactly 30 (known_at < ts), yes at 31
    assert out["term_fraud"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert np.isnan(out["term_rate"][:2]).all() and out["term_rate"][2] == 1.0
    assert np.isnan(out["term_rate"][3])  # another terminal: no labels
    # the window: the labelled transaction (minute 0) leaves a 2h window after minute 120
    late = engine.peek(batch([("e", "T", 120), ("f", "T", 121)]))
    assert late["term_fraud"].tolist() == [1.0, 0.0]


def test_a_newer_version_supersedes_from_its_known_at_only():
    engine = FeatureEngine([RATE, COUNT])
    engine.add_labels(labels([("x0", "T", 0, "fraud", 10), ("x1", "T", 5, "legitimate", 10)]))
    engine.add_labels(labels([("x0", "T", 0, "legitimate", 40)], start_id=3))
    out = engine.peek(batch([("a", "T", 20), ("b", "T", 40), ("c", "T", 41)]))
    assert out["term_fraud"].tolist() == [1.0, 1.0, 0.0]
    assert out["term_rate"].tolist() == [0.5, 0.5, 0.0]


def test_sources_are_kept_apart():
    engine = FeatureEngine([COUNT, MERCH])
    engine.add_labels(
        labels([("x0", "T", 0, "fraud", 1, "chargeback"), ("x1", "T", 0, "fraud", 1)])
    )
    out = engine.peek(batch([("a", "T", 5), ("b", "Q", 5)]))
    assert out["term_fraud"].tolist() == [1.0, 0.0]  # the analyst label only
    assert out["mcc_cb"].tolist() == [1.0, 0.0]  # the chargeback, by merchant_category


def _random(seed: int, n_tx: int = 600, n_labels: int = 150, in_known_order: bool = True):
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, 600, n_tx)).astype(float)
    terms = rng.choice(["T1", "T2", "T3", "T4"], n_tx)
    txs = [(f"t{i}", terms[i], minutes[i]) for i in range(n_tx)]
    picked = rng.integers(0, n_tx, n_labels)  # repeats: later versions supersede
    rows = []
    for j in picked:
        delay = float(rng.integers(0, 90))
        rows.append((f"t{j}", terms[j], minutes[j], rng.choice(["fraud", "legitimate"]),
                     minutes[j] + delay))  # fmt: skip
    if in_known_order:  # as stored: a label row is written when it becomes known
        rows.sort(key=lambda r: r[4])
    return txs, labels(rows)


def _reference(txs, lab: pd.DataFrame, window_min: float) -> tuple[list, list]:
    """Brute force: version i of a (tx_id, source) counts for rows at t with
    known_i < t <= known_(i+1) (the next version by id) and t - window <= its tx ts."""
    counts, frauds = [], []
    lab = lab.assign(
        tx_min=(lab["ts"] - T0).dt.total_seconds() / 60,
        known_min=(lab["known_at"] - T0).dt.total_seconds() / 60,
    ).sort_values("id")
    lab["until"] = lab.groupby("tx_id")["known_min"].shift(-1).fillna(np.inf)
    for _, term, t in txs:
        mine = lab[(lab["terminal_id"] == term) & (lab["known_min"] < t) & (t <= lab["until"])]
        mine = mine[t - window_min <= mine["tx_min"]]
        counts.append(len(mine))
        frauds.append(int((mine["label"] == "fraud").sum()))
    return counts, frauds


@pytest.mark.parametrize("seed", [3, 4])
def test_one_batch_equals_reference_with_versions_out_of_known_order(seed):
    txs, lab = _random(seed, in_known_order=False)
    engine = FeatureEngine([RATE, COUNT])
    engine.add_labels(lab)
    got = engine.peek(batch(txs))
    counts, frauds = _reference(txs, lab, 120)
    assert got["term_fraud"].tolist() == [float(f) for f in frauds]
    assert sum(counts) > 100  # the data exercise the windows


@pytest.mark.parametrize("seed", [1, 2])
def test_stream_equals_one_batch_equals_reference(seed):
    txs, lab = _random(seed)
    whole = FeatureEngine([RATE, COUNT])
    whole.add_labels(lab)
    expected = whole.peek(batch(txs))
    stream = FeatureEngine([RATE, COUNT], allowed_lateness_s=0)
    got, fed = [], 0
    for start in range(0, len(txs), 37):
        part = txs[start : start + 37]
        # as the worker does: every label row stored so far, by id — here those known at or
        # before the batch's newest row (a label row is stored when it becomes known)
        newest = part[-1][2]
        upto = int(np.searchsorted(lab["known_at"], T0 + pd.Timedelta(minutes=newest), "right"))
        stream.add_labels(lab.iloc[fed:upto])
        fed = upto
        got.append(stream.compute(batch(part)))
    streamed = pd.concat(got, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, expected.reset_index(drop=True))
    counts, frauds = _reference(txs, lab, 120)
    assert expected["term_fraud"].tolist() == [float(f) for f in frauds]
    rates = [f / n if n else np.nan for f, n in zip(frauds, counts, strict=True)]
    assert np.allclose(expected["term_rate"], rates, equal_nan=True)
    held = stream.labels.rows
    newest = int(batch(txs[-1:])["ts"].astype("int64").iloc[0])
    assert stream.labels.evict(newest, force=True) > 0  # past the window: forgotten
    assert stream.labels.rows < held
    assert stream.peek(batch(txs[-1:])).equals(expected.tail(1).reset_index(drop=True))


@pytest.mark.parametrize(
    ("decl", "key", "words"),
    [
        ({"agg": "count", "by": "terminal_id", "window": "1h", "labels": "analyst"}, "labels",
         "only fraud_count, fraud_rate and time_since_fraud"),
        ({"agg": "fraud_rate", "by": "terminal_id", "window": "1h", "labels": "Analyst!"},
         "labels", "label source"),
        ({"agg": "fraud_rate", "by": "device_id", "window": "1h", "labels": "analyst"}, "by",
         "cannot group by 'device_id'"),
        ({"agg": "fraud_rate", "by": "terminal_id", "window": "1h", "labels": "analyst",
          "label_delay": "1d"}, "label_delay", "carry their own known_at"),
        ({"agg": "fraud_rate", "by": "terminal_id", "window": "1h", "lables": "analyst"},
         "lables", "unknown key"),
    ],
)  # fmt: skip
def test_declaration_errors_name_their_key(decl, key, words):
    with pytest.raises(FeatureSpecError, match=words) as err:
        parse_feature("f", decl)
    assert err.value.key == key


def test_engine_without_label_features_ignores_labels():
    engine = FeatureEngine([parse_feature("n", {"agg": "count", "by": "card_id", "window": "1h"})])
    assert engine.label_sources == [] and engine.labels is None
    engine.add_labels(labels([("x0", "T", 0, "fraud", 1)]))  # a no-op


def test_a_rule_file_locates_a_bad_labels_value():
    from workbench.errors import RuleSetError
    from workbench.rules import parse_rules

    text = (
        "bands: {medium: 40, high: 70}\n"
        "features:\n"
        "  f: {agg: fraud_rate, by: terminal_id, window: 1d, labels: Analyst}\n"
        "rules:\n"
        "  - id: r\n    when: f > 0.5\n    score: 10\n"
    )
    with pytest.raises(RuleSetError, match=r"labels must name a label source .* \(x.yaml:3:61\)"):
        parse_rules({"x.yaml": text})
