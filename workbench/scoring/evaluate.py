"""Evaluation: a rule set, its lists and its snoozes applied to transactions, as the stream does.

Every evaluator of the workbench comes through here — the stream's detect node
(:meth:`~workbench.scoring.detector.Detector.evaluate`), the backtest (the same, slice by
slice), the editor's what-if and the reload dry run (:func:`evaluate`, one batch) — and all of
them end in :meth:`~workbench.scoring.scorer.Scorer.evaluation`, the one implementation of
scoring. Its result, an :class:`~workbench.scoring.result.Evaluation`, carries the points,
the band, the long-format hits that storage writes and the boolean hit matrix (rows x
enabled rules) that the comparisons read, so nobody rebuilds the matrix from the long hits.

Lists and snoozes come in as an :class:`~workbench.scoring.overlay.Overlay`: the maintained
lists that ``x in list("name")`` reads, and the snoozes, each applied by *event time* (a
transaction whose ``ts`` is before the snooze's ``until`` does not hit the snoozed rule for
that entity; later ones do). Without an overlay the maintained lists are empty and nothing
is snoozed — what the stream does when no list has an entry.

:func:`stored_hits` is the other side of a comparison: the same matrix read back from the
``rule_hits`` the stream stored.

>>> from workbench.rules import parse_rules
>>> from workbench.schema import coerce
>>> from workbench.scoring.overlay import Overlay
>>> rows, _ = coerce(pd.DataFrame({"tx_id": ["a", "b"], "card_id": ["c1", "c2"],
...     "ts": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]),
...     "amount": [10.0, 20.0]}))
>>> rules = parse_rules({"r.yaml": "rules:\\n  - id: blocked\\n"
...     "    when: card_id in list(\\"blocked_cards\\")\\n    score: 80\\n"})
>>> done = evaluate(rules, rows, overlay=Overlay.build({"blocked_cards": ["c2"]}))
>>> done.scores["band"].tolist(), done.matrix[:, 0].tolist()
(['Low', 'High'], [False, True])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from workbench import schema
from workbench.features import FeatureEngine
from workbench.rules import RuleSet
from workbench.scoring.overlay import Overlay
from workbench.scoring.result import Evaluation
from workbench.scoring.scorer import Scorer

__all__ = ["Evaluation", "evaluate", "point_in_time_features", "stored_hits", "stored_rule_ids"]


def point_in_time_features(
    ruleset: RuleSet,
    batch: pd.DataFrame,
    *,
    warmup: pd.DataFrame | None = None,
    allowed_lateness_s: float = 3600.0,
) -> pd.DataFrame:
    """The features ``ruleset`` declares, for ``batch`` (batch-schema columns, oldest
    first), each row seeing only rows strictly before it; ``warmup`` (older rows) only fills
    the windows first. The feature engine the stream uses, on fresh state."""
    engine = FeatureEngine(ruleset.features, allowed_lateness_s=allowed_lateness_s)
    if warmup is not None and len(warmup):
        engine.compute(warmup[list(schema.NAMES)].reset_index(drop=True))
    return engine.compute(batch)


def evaluate(
    ruleset: RuleSet,
    batch: pd.DataFrame,
    *,
    overlay: Overlay | None = None,
    features: pd.DataFrame | Mapping[str, np.ndarray] | None = None,
    warmup: pd.DataFrame | None = None,
    allowed_lateness_s: float = 3600.0,
    explain: bool = False,
) -> Evaluation:
    """``batch`` scored by ``ruleset`` with ``overlay``'s lists and snoozes, exactly as the
    stream's detect node would score it. ``features`` when already computed (else
    :func:`point_in_time_features` with ``warmup``); ``explain`` collects the evidence."""
    if features is None:
        features = point_in_time_features(
            ruleset, batch, warmup=warmup, allowed_lateness_s=allowed_lateness_s
        )
    return Scorer(ruleset, overlay).evaluation(batch, features, explain=explain)


def stored_hits(rule_hits: pd.Series, rule_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The hit matrix of decisions the stream stored: a boolean frame, one column per rule
    id (default: every rule id that hit), from ``rule_hits`` JSON text (``{"id": points}``).

    Vectorized: one substring search per rule over the text column (a rule id is a plain
    identifier, so ``"id":`` appears in the text exactly when the rule hit).
    """
    text = pd.Series(rule_hits, dtype="str").fillna("{}")
    if rule_ids is None:
        rule_ids = stored_rule_ids(text)
    return pd.DataFrame(
        {rid: text.str.contains(f'"{rid}":', regex=False).to_numpy(bool) for rid in rule_ids},
        index=pd.RangeIndex(len(text)),
        columns=list(rule_ids),
    )


def stored_rule_ids(rule_hits: pd.Series) -> list[str]:
    """Every rule id that appears in stored ``rule_hits`` JSON text, sorted."""
    text = pd.Series(rule_hits, dtype="str").fillna("{}")
    ids: set[str] = set()
    # Only the distinct hit combinations are parsed: a few hundred, not one per row.
    for combo in pd.unique(text[text != "{}"]):
        ids.update(json.loads(combo))
    return sorted(ids)
