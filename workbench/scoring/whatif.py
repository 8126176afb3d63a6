"""What-if: the same transactions scored by two rule sets, side by side.

The rule editor asks "what would this edit change?" before it is applied. Both rule sets —
``before`` (the active one) and ``after`` (the candidate) — score the *same* rows with the
stream's own feature and scoring code, so every difference comes from the edit alone (not
from stored scores made by older versions). Features are point-in-time; rows passed as
``warmup`` feed the feature windows without being scored. Both sides read the same maintained
lists and snoozes (``overlay``: the caller passes the ones in force, as the stream would use
them; a snooze hides its rule's hits on its entity for rows whose event time is before its
end). Each side is judged by its own alert policy (``alert.min_band`` and ``alert.dedup``), as
the stream would judge it. Scoring is :func:`~workbench.scoring.evaluate.evaluate`.

Pure pandas/numpy over frames the caller read: no database here, so the dashboard (which
reads the rows) and notebooks can both use it.

>>> from workbench.rules import parse_rules
>>> from workbench.schema import coerce
>>> import pandas as pd
>>> rows, _dead = coerce(pd.DataFrame({"tx_id": ["a", "b"], "card_id": ["c1", "c2"],
...     "ts": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]),
...     "amount": [10.0, 5000.0]}))
>>> old = parse_rules({"r.yaml": "rules:\\n  - {id: big, when: amount > 9000, score: 80}\\n"})
>>> new = parse_rules({"r.yaml": "rules:\\n  - {id: big, when: amount > 1000, score: 80}\\n"})
>>> int(what_if(old, new, rows).migration.loc["Low", "High"])
1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench import bands, schema
from workbench.rules import RuleSet
from workbench.scoring import metrics as m
from workbench.scoring.evaluate import evaluate, point_in_time_features
from workbench.scoring.overlay import Overlay

SIDES = ("before", "after")


@dataclass
class WhatIf:
    """``migration``: band before (rows) -> band after (columns), counts summing to ``rows``.
    ``summary``: one row per side — transactions, low/medium/high, alerts (deduplicated per
    card), flagged (band at least the alert band), precision, recall, F1 against the labels.
    ``rules``: per rule id, hits and precision before and after, and the change in hits.
    ``eval_errors``: side -> {rule id: rows where evaluating the rule failed}.
    ``changed``: the transactions whose band changed (tx_id, card_id, amount, band and score
    before and after), the largest score changes first, at most :data:`CHANGED_ROWS`;
    ``changed_total`` counts them all."""

    rows: int
    migration: pd.DataFrame
    summary: pd.DataFrame
    rules: pd.DataFrame
    eval_errors: dict[str, dict[str, int]] = field(default_factory=dict)
    changed: pd.DataFrame = field(default_factory=pd.DataFrame)
    changed_total: int = 0

    @property
    def alert_change(self) -> int:
        """Alerts after minus alerts before."""
        return int(self.summary.loc["after", "alerts"] - self.summary.loc["before", "alerts"])


def what_if(
    before: RuleSet,
    after: RuleSet,
    history: pd.DataFrame,
    *,
    warmup: pd.DataFrame | None = None,
    overlay: Overlay | None = None,
    allowed_lateness_s: float = 3600.0,
) -> WhatIf:
    """Score ``history`` (batch-schema columns, oldest first) with both rule sets and
    compare; ``warmup`` (older rows) only fills the feature windows; ``overlay``: the
    maintained lists and snoozes both sides read (default: none)."""
    batch = history[list(schema.NAMES)].reset_index(drop=True)
    label = m.labels(batch["is_fraud"])
    computed: list[tuple[tuple, pd.DataFrame]] = []  # features shared when both declare the same
    side_bands, side_scores, hit_frames, summary, errors = {}, {}, {}, {}, {}
    for side, ruleset in zip(SIDES, (before, after), strict=True):
        feats = _features(ruleset, batch, warmup, allowed_lateness_s, computed)
        done = evaluate(ruleset, batch, overlay=overlay, features=feats)
        scores = done.scores
        band = scores["band"].astype("str").to_numpy()
        flagged = bands.ranks(band) >= bands.alert_rank(ruleset.alert.min_band)
        opened = m.alert_sessions(batch["card_id"], batch["ts"], flagged, ruleset.alert.dedup_s)
        side_bands[side] = band
        side_scores[side] = scores["risk_score"].to_numpy(np.float64)
        hit_frames[side] = done.hit_frame()
        summary[side] = m.summary(band, label, flagged, len(opened))
        errors[side] = dict(done.eval_errors)
    changed, changed_total = _changed(batch, side_bands, side_scores)
    return WhatIf(
        rows=len(batch),
        changed=changed,
        changed_total=changed_total,
        migration=m.band_migration(side_bands["before"], side_bands["after"]),
        summary=pd.DataFrame.from_dict(summary, orient="index").loc[list(SIDES)],
        rules=_rule_table(hit_frames, label),
        eval_errors=errors,
    )


CHANGED_ROWS = 200  # the what-if lists at most this many band changes


def _changed(batch, side_bands, side_scores) -> tuple[pd.DataFrame, int]:
    """The rows whose band differs between the sides, largest score change first (bounded)."""
    moved = side_bands["before"] != side_bands["after"]
    frame = pd.DataFrame(
        {
            "tx_id": batch["tx_id"].astype(str).to_numpy()[moved],
            "card_id": batch["card_id"].astype(str).to_numpy()[moved],
            "amount": batch["amount"].astype(float).to_numpy()[moved],
            "band_before": side_bands["before"][moved],
            "band_after": side_bands["after"][moved],
            "score_before": side_scores["before"][moved].round(1),
            "score_after": side_scores["after"][moved].round(1),
        }
    )
    order = np.argsort(
        -np.abs(frame["score_after"] - frame["score_before"]).to_numpy(), kind="stable"
    )
    return frame.iloc[order[:CHANGED_ROWS]].reset_index(drop=True), int(moved.sum())


def _features(ruleset, batch, warmup, lateness, computed) -> pd.DataFrame:
    key = tuple(ruleset.features)
    for seen, feats in computed:
        if seen == key:
            return feats
    feats = point_in_time_features(ruleset, batch, warmup=warmup, allowed_lateness_s=lateness)
    computed.append((key, feats))
    return feats


def _rule_table(hit_frames: dict[str, pd.DataFrame], label: np.ndarray) -> pd.DataFrame:
    """Per rule id (of either side): hits and precision before/after; a rule missing (or
    disabled) on one side has 0 hits there."""
    ids = sorted(set(hit_frames["before"].columns) | set(hit_frames["after"].columns))
    out = pd.DataFrame(index=pd.Index(ids, name="rule_id"))
    for side in SIDES:
        table = m.rule_metrics(hit_frames[side], label)
        hits = table["hits"] if len(table) else pd.Series(dtype="int64")
        precision = table["precision"] if len(table) else pd.Series(dtype="float64")
        out[f"hits_{side}"] = hits.reindex(ids, fill_value=0).astype("int64")
        out[f"precision_{side}"] = precision.reindex(ids).astype("float64")
    out["change"] = out["hits_after"] - out["hits_before"]
    return out[["hits_before", "hits_after", "change", "precision_before", "precision_after"]]
