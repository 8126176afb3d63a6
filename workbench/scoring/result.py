"""What scoring produces for one batch: the contract between scoring and storage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

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
    """

    frame: pd.DataFrame
    hits: pd.DataFrame
    dead: pd.DataFrame
    eval_errors: dict[str, int] = field(default_factory=dict)
    position: Any = None
    evidence: pa.Table | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def records(self) -> int:
        return len(self.frame) + len(self.dead)


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
