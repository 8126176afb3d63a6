"""A challenger scored in the shadow of the active rule set gets exactly the scores it would
get as the active set: shared features computed once, its own (or differently declared)
ones by an engine of its own, the active set's scores untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.rules import parse_rules
from workbench.scoring import rollout as rollouts
from workbench.scoring.detector import Detector
from workbench.scoring.overlay import Overlay
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
# card_tx_1h redeclared with another window, and a feature the active set lacks.
CHALLENGER = """
features:
  card_tx_1h: {agg: count, by: card_id, window: 20m}
  shadow_cust_1d: {agg: count, by: customer_id, window: 1d}
rules:
  - id: busy_card
    when: card_tx_1h >= 2
    score: 50
  - id: busy_customer
    when: shadow_cust_1d >= 3
    score: 30
"""


def test_shadow_scores_equal_the_challenger_scored_alone() -> None:
    texts = {f"rules/{p.name}": p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    active = parse_rules(texts)
    challenger = parse_rules({"next/c.yaml": CHALLENGER})
    sim = Simulator(sim_customers=300, sim_terminals=100, batch_rows=400, seed=5)
    batches = [sim.next_batch() for _ in range(8)]

    both = Detector(active)
    both.set_shadow(challenger)
    alone, plain = Detector(challenger), Detector(active)
    assert [s.name for s in both.shadow_features.specs] == ["card_tx_1h", "shadow_cust_1d"]
    shadow_hits = 0
    for batch in batches:
        got = both.process(batch)
        want = alone.process(batch)
        base = plain.process(batch)
        pd.testing.assert_frame_equal(got.frame, base.frame)  # the active side is untouched
        pd.testing.assert_frame_equal(got.hits, base.hits)
        assert got.shadow is not None
        pd.testing.assert_frame_equal(
            got.shadow.scores.reset_index(drop=True),
            want.frame[["risk_score", "band", "rule_set_version"]].reset_index(drop=True),
        )
        pd.testing.assert_frame_equal(got.shadow.hits, want.hits)
        shadow_hits += int(got.shadow.matrix.sum())
        for d in (both, alone, plain):
            d.maintain()
    assert shadow_hits > 0  # the challenger's rules did fire on this stream


def test_clearing_the_shadow_keeps_the_active_feature_state() -> None:
    texts = {f"rules/{p.name}": p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    active = parse_rules(texts)
    detector = Detector(active)
    engine = detector.features
    detector.set_shadow(parse_rules({"next/c.yaml": CHALLENGER}))
    detector.set_shadow(None)
    assert detector.features is engine and detector.shadow is None
    sim = Simulator(sim_customers=50, sim_terminals=20, batch_rows=100, seed=1)
    assert detector.process(sim.next_batch()).shadow is None
    assert np.isfinite(detector.process(sim.next_batch()).frame["risk_score"]).all()


def _default_texts() -> dict[str, str]:
    return {f"rules/{p.name}": p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}


def _edited(old: str, new: str) -> dict[str, str]:
    texts = _default_texts()
    assert sum(old in t for t in texts.values()) == 1
    return {k: v.replace(old, new) for k, v in texts.items()}


def test_rules_shared_with_the_active_set_score_as_the_challenger_alone() -> None:
    """The challenger's rules with the active set's condition take its hits (before snoozes)
    instead of being evaluated again; a rule reading a feature the challenger redeclares,
    and every rule when the rule-file lists differ, are evaluated on their own. Either way
    the shadow evaluation is the challenger's own, snoozes included."""
    active = parse_rules(_default_texts())
    # card_testing keeps its text but reads a redeclared card_tx_10m (2h: hits more often)
    longer = parse_rules(
        _edited(
            "card_tx_10m:       {agg: count, by: card_id, window: 10m}",
            "card_tx_10m:       {agg: count, by: card_id, window: 2h}",
        )
    )
    # risky_merchant keeps its text, but the rule-file list it reads is another one
    listed = parse_rules(
        _edited(
            "risky_mcc: [gambling, crypto, money_transfer]",
            "risky_mcc: [gambling, crypto, money_transfer, travel, electronics]",
        )
    )
    sim = Simulator(sim_customers=200, sim_terminals=80, batch_rows=500, seed=11)
    batches = [sim.next_batch() for _ in range(6)]
    cards = batches[0].frame["card_id"].astype(str).unique()[:60]
    snoozes = pd.DataFrame(
        {
            "rule_id": ["large_amount"] * len(cards),
            "kind": ["card"] * len(cards),
            "value": cards,
            "until": pd.Timestamp("2100-01-01", tz="UTC"),
        }
    )
    overlay = Overlay.build({}, snoozes)
    for challenger, different in ((longer, "card_testing"), (listed, "risky_merchant")):
        both = Detector(active, overlay=overlay)
        both.set_shadow(challenger)
        alone = Detector(challenger, overlay=overlay)
        differs = snoozed = 0
        for batch in batches:
            got = both.process(batch)
            want = alone.evaluate(batch.frame)
            pd.testing.assert_frame_equal(got.shadow.scores, want.scores)
            pd.testing.assert_frame_equal(got.shadow.hits, want.hits)
            assert got.shadow.eval_errors == want.eval_errors
            assert got.shadow.snoozed == want.snoozed
            snoozed += want.snoozed
            # the rule that must not be shared hits other rows than the active set's rule
            shadow_rows = np.flatnonzero(got.shadow.matrix[:, got.shadow.rule_ids.index(different)])
            active_rows = got.hits.loc[got.hits["rule_id"] == different, "row"].to_numpy()
            differs += not np.array_equal(shadow_rows, active_rows)
            for d in (both, alone):
                d.maintain()
        assert snoozed > 0 and differs > 0, different


def _arms(batches, challenger, active, rollout):
    """Per batch: (both, alone, plain) results with ``rollout``."""
    both = Detector(active)
    both.set_shadow(challenger, rollout=rollout)
    alone, plain = Detector(challenger), Detector(active)
    for batch in batches:
        yield both.process(batch), alone.process(batch), plain.process(batch)
        for d in (both, alone, plain):
            d.maintain()


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["risk_score", "band", "rule_set_version"]].reset_index(drop=True)


def _rows(hits: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    return hits[keep[hits["row"].to_numpy()]].reset_index(drop=True)


def test_a_rollout_lets_the_challenger_decide_for_its_cards_only() -> None:
    """At 40 %, the rows of the cards whose bucket is below 40 carry the challenger's score,
    hits and evidence (as it scores alone) and the active set's verdict in the shadow; every
    other row is as without a rollout. A card stays in its arm from batch to batch."""
    active = parse_rules(_default_texts())
    challenger = parse_rules({"next/c.yaml": CHALLENGER})
    sim = Simulator(sim_customers=300, sim_terminals=100, batch_rows=400, seed=5)
    batches = [sim.next_batch() for _ in range(6)]
    arm_of: dict[str, bool] = {}
    decided = 0
    for got, alone, plain in _arms(batches, challenger, active, 40):
        cards = got.frame["card_id"].astype(str)
        rows = rollouts.bucket(cards) < 40
        for card, mine in zip(cards, rows, strict=True):
            assert arm_of.setdefault(card, bool(mine)) == bool(mine)
        decided += int(rows.sum())
        want = np.where(rows[:, None], _scores(alone.frame), _scores(plain.frame))
        assert (_scores(got.frame).to_numpy() == want).all()
        other = np.where(rows[:, None], _scores(plain.frame), _scores(alone.frame))
        assert (_scores(got.shadow.scores).to_numpy() == other).all()
        pd.testing.assert_frame_equal(
            _rows(got.hits, rows), _rows(alone.hits, rows), check_dtype=False
        )
        pd.testing.assert_frame_equal(
            _rows(got.hits, ~rows), _rows(plain.hits, ~rows), check_dtype=False
        )
        pd.testing.assert_frame_equal(
            _rows(got.shadow.hits, rows), _rows(plain.hits, rows), check_dtype=False
        )
        evidence = got.evidence.to_pandas()
        on_arm = rows[evidence["row"].to_numpy()]
        assert set(evidence.loc[on_arm, "rule_id"]) <= {"busy_card", "busy_customer"}
        assert got.rule_set_version == active.version
    assert decided > 0 and len(set(arm_of.values())) == 2  # both arms were populated


def test_rollout_zero_changes_nothing_and_a_hundred_hands_every_row_over() -> None:
    active = parse_rules(_default_texts())
    challenger = parse_rules({"next/c.yaml": CHALLENGER})
    sim = Simulator(sim_customers=200, sim_terminals=80, batch_rows=300, seed=2)
    batches = [sim.next_batch() for _ in range(4)]
    for rollout in (0, 100):
        for got, alone, plain in _arms(batches, challenger, active, rollout):
            decides, kept = (alone, plain) if rollout else (plain, alone)
            pd.testing.assert_frame_equal(_scores(got.frame), _scores(decides.frame))
            pd.testing.assert_frame_equal(got.hits, decides.hits, check_dtype=False)
            assert got.evidence.equals(decides.evidence)
            pd.testing.assert_frame_equal(_scores(got.shadow.scores), _scores(kept.frame))
            pd.testing.assert_frame_equal(got.shadow.hits, kept.hits, check_dtype=False)


def test_a_rollout_needs_a_percent() -> None:
    detector = Detector(parse_rules(_default_texts()))
    for bad in (-1, 101):
        with pytest.raises(ValueError, match=r"0\.\.100"):
            detector.set_shadow(parse_rules({"next/c.yaml": CHALLENGER}), rollout=bad)


def test_the_feature_threads_reach_every_engine_the_detector_makes():
    rule = "rules:\n  - {id: r, when: amount > 1, score: 50}\n"
    one = parse_rules({"a.yaml": "features:\n  n: {agg: count, by: card_id, window: 1h}\n" + rule})
    two = parse_rules(
        {"a.yaml": "features:\n  m: {agg: count, by: terminal_id, window: 1h}\n" + rule}
    )
    detector = Detector(one, feature_threads=2)
    assert detector.features.threads == 2
    detector.swap(two)  # other features: a new engine, with the same threads
    assert detector.features.threads == 2 and detector.features.specs[0].name == "m"
    assert Detector(one).features.threads == 1
