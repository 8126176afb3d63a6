"""Lists and snoozes as the scorer reads them: one immutable value swapped between batches.

The :class:`Overlay` is the data side of scoring that changes without a rule publication:

- **maintained lists** (name -> values), read by ``x in list("name")`` through the batch
  environment (:data:`~workbench.rules.values.LISTS_KEY`), tested with a vectorized ``isin``;
- **snoozes** (rule, entity kind, value, until): while a transaction's *event time* is before
  ``until``, the snoozed rule's hit on that entity is dropped, so its points are not counted.
  Using event time (like alert dedup) makes a replay score exactly as the stream did, and a
  snooze ends by itself when the stream passes ``until``.

The pipeline builds a new overlay when the lists or snoozes change
(:mod:`workbench.pipeline.lists`) and the detector swaps it in between batches, like a rule
set. Applying snoozes is one ``get_indexer`` per snoozed (rule, kind), never a loop over rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.rules.lists import KIND_COLUMNS

SNOOZE_COLUMNS = ("rule_id", "kind", "value", "until")


def _no_snoozes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rule_id": pd.Series([], dtype=object),
            "kind": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=object),
            "until": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )


@dataclass(frozen=True)
class Overlay:
    """Maintained lists (name -> Arrow string array, sorted, unique) and active snoozes for
    scoring; ``version`` is a content hash. ``groups`` is the snoozes made ready for the mask
    once per overlay (not per batch): per (rule, kind), the values as an Arrow array and
    each one's end as datetime64[ns] (UTC)."""

    lists: Mapping[str, pa.Array] = field(default_factory=dict)
    snoozes: pd.DataFrame = field(default_factory=_no_snoozes)
    version: str = "empty"
    groups: tuple = ()

    @classmethod
    def build(cls, lists: Mapping[str, list[str]], snoozes: pd.DataFrame | None = None) -> Overlay:
        """An overlay from ``{list name: values}`` and a snooze frame (``rule_id``, ``kind``,
        ``value``, ``until``): values deduplicated and sorted, so equal data gives an equal
        ``version`` whatever order it was read in."""
        arrays = {
            name: pa.array(sorted(set(values)), pa.large_string())
            for name, values in lists.items()
            if len(values)
        }
        frame = _no_snoozes() if snoozes is None or not len(snoozes) else snoozes
        frame = frame.loc[:, list(SNOOZE_COLUMNS)].copy()
        frame["until"] = pd.to_datetime(frame["until"], utc=True)
        # Several snoozes of one entity for one rule: the latest end wins.
        frame = (
            frame.groupby(["rule_id", "kind", "value"], as_index=False, sort=True)["until"]
            .max()
            .reset_index(drop=True)
        )
        digest = hashlib.sha256()
        for name in sorted(arrays):
            text = "\x1f".join(arrays[name].to_pylist())
            digest.update(name.encode() + b"\x1e" + text.encode() + b"\x1d")
        digest.update(frame.to_csv(index=False).encode())
        groups = tuple(
            (
                rule_id,
                kind,
                pa.array(group["value"].astype(str).tolist(), pa.large_string()),
                group["until"].dt.tz_localize(None).to_numpy("datetime64[ns]"),
            )
            for (rule_id, kind), group in frame.groupby(["rule_id", "kind"], sort=True)
        )
        return cls(arrays, frame, digest.hexdigest()[:16], groups)

    def describe(self) -> str:
        """One line for a report: how many lists, values and snoozes this overlay holds."""
        values = sum(len(v) for v in self.lists.values())
        names = ", ".join(sorted(self.lists)) or "none"
        return (
            f"{len(self.lists)} maintained list(s) with {values:,} value(s) ({names}); "
            f"{len(self.snoozes):,} snooze(s) (version {self.version})"
        )

    def snooze_mask(self, batch: pd.DataFrame, rule_ids: np.ndarray, hits: np.ndarray) -> int:
        """Clear, in ``hits`` (rows x ``rule_ids``), every hit an active snooze covers; the
        number of hits cleared."""
        if not self.groups or not len(batch):
            return 0
        column_of = {rule: j for j, rule in enumerate(rule_ids)}
        ts = batch["ts"]
        ts_ns = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
        columns: dict[str, pa.Array] = {}
        cleared = 0
        for rule_id, kind, values, until in self.groups:
            j = column_of.get(rule_id)
            name = KIND_COLUMNS.get(kind)
            if j is None or name is None or name not in batch:
                continue
            if name not in columns:
                columns[name] = _arrow_text(batch[name])
            column = columns[name]
            found = values if values.type == column.type else values.cast(column.type)
            at = pc.fill_null(pc.index_in(column, value_set=found), -1).to_numpy()
            known = at >= 0
            snoozed = known.copy()
            snoozed[known] = ts_ns[known] < until[at[known]]
            snoozed &= hits[:, j]
            cleared += int(np.count_nonzero(snoozed))
            hits[snoozed, j] = False
        return cleared


def _arrow_text(series: pd.Series) -> pa.Array:
    values = series.array
    if hasattr(values, "__arrow_array__"):
        return pa.array(values)
    return pa.array(np.asarray(values, dtype=object), type=pa.large_string(), from_pandas=True)
