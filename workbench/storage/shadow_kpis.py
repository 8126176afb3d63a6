"""The KPIs of a challenger against the active rule set, over the transactions both scored.

Nothing is re-scored: the active side is what ``transactions`` holds, the challenger's is
``shadow_scores`` (:mod:`workbench.storage.shadow`). Two ground truths are kept apart and
named: **simulator truth** (``is_fraud``, ``sim_*``) and **analyst labels** (the current
``analyst`` label, ``analyst_*``). A transaction is *flagged* by a side when its band is High.
Read by the notebooks (:func:`workbench.analysis.shadow.shadow_compare`) and the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from workbench import bands
from workbench.storage import shadow
from workbench.storage.frames import Source

__all__ = ["ShadowComparison", "comparison"]


@dataclass
class ShadowComparison:
    """``version``: the challenger compared; ``rows``: transactions both sets scored.
    ``migration``: active band (index) x shadow band (columns), counts. ``rules``: per rule
    id, ``active_hits``/``shadow_hits`` and on each side ``*_sim_precision`` and
    ``*_analyst_precision`` (fraud among that side's hits with a known truth). ``flagged``:
    per side, High rows and their precision on both truths."""

    version: str | None
    rows: int
    migration: pd.DataFrame
    rules: pd.DataFrame
    flagged: pd.DataFrame

    @property
    def band_changes(self) -> int:
        """Transactions the challenger puts in another band than the active set."""
        m = self.migration.to_numpy()
        return int(m.sum() - np.trace(m)) if m.size else 0


def _precision(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["sim_precision"] = frame["sim_fraud"] / frame["sim_known"].where(frame["sim_known"] > 0)
    out["analyst_precision"] = frame["analyst_fraud"] / frame["analyst_labelled"].where(
        frame["analyst_labelled"] > 0
    )
    return out


def comparison(
    source: Source,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    version: str | None = None,
) -> ShadowComparison:
    """Active against challenger over the transactions with ``since <= ts < until`` (aware
    datetimes). ``version``: the challenger to compare; default the one in effect, else the
    one with the newest stored scores."""
    if version is None:
        found = shadow.current(source)
        stored = shadow.stored_versions(source) if found is None else []
        version = found["version"] if found is not None else (stored[0] if stored else None)
    labels = list(bands.LABELS)
    if version is None:
        parts = shadow.frame_of([], ["active_band", "shadow_band", "rows"])
        found_parts = {"migration": parts, "rules": None, "bands": None}
    else:
        found_parts = shadow.compare(source, version, since, until)
    migration = (
        found_parts["migration"]
        .pivot_table(
            index="active_band", columns="shadow_band", values="rows", aggfunc="sum", fill_value=0
        )
        .reindex(index=labels, columns=labels, fill_value=0)
        .astype("int64")
    )
    rows = int(migration.to_numpy().sum())
    return ShadowComparison(
        version=version,
        rows=rows,
        migration=migration,
        rules=_rules(found_parts["rules"]),
        flagged=_flagged(found_parts["bands"]),
    )


def _rules(frame: pd.DataFrame | None) -> pd.DataFrame:
    columns = ["rule_id"] + [
        f"{side}_{what}"
        for side in ("active", "shadow")
        for what in ("hits", "sim_precision", "analyst_precision")
    ]
    if frame is None or frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns}).astype(
            {"rule_id": "str"}
        )
    sides = []
    for side in ("active", "shadow"):
        part = frame[frame["side"] == side].set_index("rule_id")
        got = _precision(part)
        got.insert(0, "hits", part["rows"])
        sides.append(got.add_prefix(f"{side}_"))
    out = pd.concat(sides, axis=1).fillna({"active_hits": 0, "shadow_hits": 0})
    out[["active_hits", "shadow_hits"]] = out[["active_hits", "shadow_hits"]].astype("int64")
    out = out.rename_axis("rule_id").reset_index()
    return out.sort_values(["shadow_hits", "rule_id"], ascending=[False, True], ignore_index=True)[
        columns
    ]


def _flagged(frame: pd.DataFrame | None) -> pd.DataFrame:
    index = pd.Index(["active", "shadow"], name="side")
    if frame is None or frame.empty:
        return pd.DataFrame(
            {"flagged": [0, 0], "sim_precision": np.nan, "analyst_precision": np.nan}, index=index
        )
    high = frame[frame["band"] == bands.LABELS[-1]].set_index("side").reindex(index)
    counts = high.drop(columns="band").fillna(0).astype("int64")
    out = _precision(counts)
    out.insert(0, "flagged", counts["rows"])
    return out
