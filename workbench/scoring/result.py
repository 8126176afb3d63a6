"""What scoring produces for one batch: the contract between scoring and storage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

BANDS = ("Low", "Medium", "High")


@dataclass
class ScoredBatch:
    """A scored batch.

    ``frame``: the typed batch (workbench.schema columns, same order) plus ``risk_score``
    (float64, 0..100), ``band`` (str: Low | Medium | High) and ``rule_set_version`` (str).
    ``hits``: one row per (transaction, rule that hit): ``row`` (int64 position in ``frame``),
    ``rule_id`` (str), ``points`` (float64). ``dead``: dead letters (``raw``, ``reason``) found
    while reading this batch. ``eval_errors``: rule id -> rows where evaluating the rule failed
    (e.g. division by zero); those rows do not hit that rule. ``evidence``: for the rows
    reaching the alert band, what each fired rule read (an Arrow table: ``row``, ``rule_id``,
    ``name``, ``value`` as JSON text; :mod:`workbench.scoring.evidence`), or None.
    ``shadow``: what the challenger rule set made of the same rows (stored apart in
    ``shadow_scores``, never alerting), or None; under a rollout
    (:mod:`workbench.scoring.rollout`) row by row the verdict of the set that did not
    decide the row. ``rule_set_version``: the active rule set's version (what the batch was
    scored with; under a rollout ``frame``'s rows carry either set's), or None: as the rows.
    """

    frame: pd.DataFrame
    hits: pd.DataFrame
    dead: pd.DataFrame
    eval_errors: dict[str, int] = field(default_factory=dict)
    position: Any = None
    evidence: pa.Table | None = None
    created_at: float = field(default_factory=time.time)
    shadow: Evaluation | None = None
    rule_set_version: str | None = None

    @property
    def records(self) -> int:
        return len(self.frame) + len(self.dead)


@dataclass
class Evaluation:
    """What a rule set (with its lists and snoozes) makes of one batch: the one result that
    the stream, the backtest, the what-if and the reload dry run all read.

    ``scores``: ``risk_score`` (float64, 0..100), ``band`` (str) and ``rule_set_version``
    (str), aligned with the batch. ``matrix``: rows x ``rule_ids`` (the enabled rules, in
    rule-set order), True where the rule hit and no snooze covered it. ``hits``: the same
    hits in long format (``row``, ``rule_id``, ``points``), what storage writes.
    ``eval_errors``: rule id -> rows where evaluating it failed. ``snoozed``: hits that
    snoozes cleared. ``evidence``: as in :class:`ScoredBatch` (empty unless asked for).
    ``unsnoozed``: ``matrix`` before snoozes (the same array when there are no snoozes; what a
    challenger with the same rule reuses); None when not kept.
    """

    scores: pd.DataFrame
    matrix: np.ndarray
    rule_ids: list[str]
    hits: pd.DataFrame
    eval_errors: dict[str, int] = field(default_factory=dict)
    snoozed: int = 0
    evidence: pa.Table | None = None
    unsnoozed: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.scores)

    def hit_frame(self) -> pd.DataFrame:
        """``matrix`` as a boolean frame, one column per enabled rule id."""
        return pd.DataFrame(self.matrix, columns=list(self.rule_ids), copy=False)


def as_dead_letters(batch, reason: str) -> ScoredBatch:
    """The same records as dead letters with ``reason`` (a batch that cannot be stored).

    ``batch`` is a :class:`ScoredBatch` or a source batch (anything with ``frame``, ``dead``,
    ``position`` and ``created_at``).
    """
    frame = batch.frame
    raw = frame.astype(str).to_json(orient="records", lines=True).splitlines() if len(frame) else []
    dead = pd.concat(
        [
            batch.dead,
            pd.DataFrame(
                {
                    "raw": pd.Series(raw, dtype="str"),
                    "reason": pd.Series([reason] * len(raw), dtype="str"),
                }
            ),
        ],
        ignore_index=True,
    )
    empty = frame.iloc[0:0].copy()
    for column, dtype in (("risk_score", "float64"), ("band", "str"), ("rule_set_version", "str")):
        if column not in empty.columns:
            empty[column] = pd.Series([], dtype=dtype)
    hits = pd.DataFrame(
        {
            "row": pd.Series([], dtype="int64"),
            "rule_id": pd.Series([], dtype="str"),
            "points": pd.Series([], dtype="float64"),
        }
    )
    return ScoredBatch(
        frame=empty, hits=hits, dead=dead, position=batch.position, created_at=batch.created_at
    )
