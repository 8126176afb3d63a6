"""Subexpressions that several rules contain are computed once per batch, and scoring gives
exactly what each rule gives alone: hits, unknowns and data-error counts."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from workbench.rules import parse_rules
from workbench.rules.compiler import compile_expression
from workbench.rules.values import SHARED_KEY, Shared
from workbench.scoring.overlay import Overlay
from workbench.scoring.scorer import Scorer

RULES = textwrap.dedent("""\
    bands: {medium: 40, high: 70}
    lists:
      risky: [gambling, crypto]
    features:
      card_tx_10m: {agg: count, by: card_id, window: 10m}
      card_avg_30d: {agg: mean, of: amount, by: card_id, window: 30d}
    rules:
      - id: risky_big
        when: merchant_category in risky and amount > 100
        score: 40
      - id: risky_busy
        when: merchant_category  in  risky and card_tx_10m >= 2
        score: 30
      - id: not_risky
        when: not (merchant_category in risky) and amount > 3 * card_avg_30d
        score: 20
      - id: ratio
        when: amount / card_tx_10m > 50 and merchant_category in risky
        score: 25
      - id: ratio_again
        when: coalesce(amount / card_tx_10m > 50, false) or amount > 3 * card_avg_30d
        score: 15
      - id: listed
        when: merchant_category in list("blocked_merchants") and abs(amount - card_avg_30d) > 10
        score: 35
      - id: listed_far
        when: merchant_category in list("blocked_merchants") or abs(amount - card_avg_30d) > 100
        score: 5
    """)


def _batch(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    mcc = rng.choice(["gambling", "crypto", "grocery", "fuel", None], n)
    batch = pd.DataFrame(
        {
            "amount": rng.choice([0.0, 1.0, 99.0, 150.0, 5000.0], n),
            "merchant_category": pd.array(mcc, dtype="str"),
        }
    )
    tx = rng.choice([0.0, 1.0, 2.0, 5.0, np.nan], n)  # 0: division by zero, NaN: unknown
    avg = rng.choice([np.nan, 10.0, 100.0, 1000.0], n)
    return batch, {"card_tx_10m": tx, "card_avg_30d": avg}


def test_a_rule_set_scores_as_its_rules_do_one_by_one():
    rules = parse_rules({"r.yaml": RULES})
    overlay = Overlay.build({"blocked_merchants": ["fuel", "crypto"]}, None)
    scorer = Scorer(rules, overlay)
    assert scorer._shared_keys  # the membership tests and abs(...) are found in several rules
    batch, feats = _batch(5000, seed=3)
    hits, errors = scorer.evaluate(scorer.environment(batch, feats), len(batch))
    for j, rule in enumerate(rules.enabled_rules):
        env = scorer.environment(batch, feats)
        hit, err = rule.expr(env, len(batch))  # no shared results in this environment
        assert SHARED_KEY not in env
        assert np.array_equal(hits[:, j], hit), rule.id
        assert errors.get(rule.id, 0) == int(np.count_nonzero(err)), rule.id
    assert errors["ratio"] > 0  # the data errors are still reported where they occur


def test_a_shared_result_is_computed_once_and_reused():
    fields = {"merchant_category": ("string", True), "amount": ("number", False)}
    lists = {"risky": ("gambling",)}
    first = compile_expression(
        "merchant_category in risky and amount > 1", fields=fields, lists=lists
    )
    second = compile_expression(
        "amount > 5 or merchant_category  in  risky", fields=fields, lists=lists
    )
    common = first.keys & second.keys
    assert len(common) == 1  # spelled apart, the same test
    batch = pd.DataFrame(
        {"merchant_category": pd.array(["gambling", "fuel"], dtype="str"), "amount": [2.0, 2.0]}
    )
    env = {name: batch[name] for name in batch} | {"amount": batch["amount"].to_numpy()}
    shared = Shared(frozenset(common))
    env[SHARED_KEY] = shared
    assert first(env, 2)[0].tolist() == [True, False]
    (key,) = common
    assert shared.store[key].tolist() == [True, False]
    # The second rule takes the first one's result: proven by planting another one.
    shared.store[key] = np.array([False, True])
    assert second(env, 2)[0].tolist() == [False, True]
    del env[SHARED_KEY]
    assert second(env, 2)[0].tolist() == [True, False]


def test_nothing_is_kept_past_the_budget():
    fields = {"amount": ("number", False)}
    expr = compile_expression("abs(amount - 3) > 1", fields=fields, lists={})
    env = {"amount": np.arange(1000, dtype=np.float64), SHARED_KEY: Shared(expr.keys, budget=10)}
    hit, _ = expr(env, 1000)
    assert hit.sum() == 997
    assert env[SHARED_KEY].store == {}
