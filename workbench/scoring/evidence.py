"""The evidence of a decision: for each fired rule, the values of the names it read.

"Why, with numbers": an analyst looking at an alert sees, per rule that hit, each field and
feature of its ``when`` with the value the rule saw — ``amount = 2500``, ``cust_avg_30d =
61.2`` — not a value recomputed later (window state, lateness and label timing could make
a recomputation differ). So the evidence is taken at scoring time, from the very arrays the
rules were evaluated on, for the rows whose band reaches the alert band only (the rows that
can raise or join an alert: about 1% of a batch), and stored with the alert hits
(``alert_evidence``, :mod:`workbench.storage.writer`).

Built vectorized: one long frame (``row``, ``rule_id``, ``name``, ``value``) with ``value``
already JSON text, made per (rule, name) with array operations — no loop over rows. The
database folds it into one ``{rule_id: {name: value}}`` document per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.rules.model import Rule

COLUMNS = ("row", "rule_id", "name", "value")


def empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": pd.Series([], dtype="int64"),
            "rule_id": pd.Series([], dtype=object),
            "name": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=object),
        }
    )


def json_values(value: Any, rows: np.ndarray) -> pa.Array:
    """``value[rows]`` as JSON text (numbers, true/false, quoted strings and ISO times,
    ``null`` for missing and non-finite), vectorized."""
    if isinstance(value, pd.Series):
        value = value.array
    if isinstance(value, np.ndarray) and value.dtype.kind == "M":
        picked = pa.array(value[rows].astype("datetime64[us]"), pa.timestamp("us"))
        text = pc.strftime(picked, format="%Y-%m-%dT%H:%M:%S.%fZ")
        return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null")
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        numbers = np.asarray(value[rows], dtype=np.float64)
        text = pc.cast(pa.array(numbers), pa.string())
        return pc.if_else(pa.array(np.isfinite(numbers)), text, "null")
    if isinstance(value, np.ndarray) and value.dtype == bool:
        return pc.cast(pa.array(value[rows]), pa.string())
    array = pa.array(np.asarray(value, dtype=object)[rows], from_pandas=True)
    if pa.types.is_boolean(array.type):
        return pc.fill_null(pc.cast(array, pa.string()), "null")
    if pa.types.is_floating(array.type) or pa.types.is_integer(array.type):
        return json_values(np.asarray(array.to_numpy(zero_copy_only=False), float), slice(None))
    text = pc.cast(array, pa.string())
    text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null")


def collect(
    rules: Sequence[Rule], hits: np.ndarray, env: Mapping[str, Any], rows: np.ndarray
) -> pd.DataFrame:
    """The evidence long frame of ``rows`` (positions): for each rule (column of ``hits``)
    that hit one of them, every name its expression reads, with the value it read."""
    parts: list[pa.Table] = []
    selected = np.zeros(hits.shape[0], dtype=bool)
    selected[rows] = True
    for j, rule in enumerate(rules):
        at = np.flatnonzero(hits[:, j] & selected)
        if not len(at):
            continue
        for name in sorted(rule.expr.fields):
            if name not in env:
                continue
            parts.append(
                pa.table(
                    {
                        "row": pa.array(at, pa.int64()),
                        "rule_id": pa.array(np.full(len(at), rule.id, dtype=object), pa.string()),
                        "name": pa.array(np.full(len(at), name, dtype=object), pa.string()),
                        "value": json_values(env[name], at),
                    }
                )
            )
    if not parts:
        return empty()
    return pa.concat_tables(parts).to_pandas()
