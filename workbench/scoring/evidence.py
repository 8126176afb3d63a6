"""The evidence of a decision: for each fired rule, the values of the names it read.

"Why, with numbers": an analyst looking at an alert sees, per rule that hit, each field and
feature of its ``when`` with the value the rule saw — ``amount = 2500``, ``cust_avg_30d =
61.2`` — not a value recomputed later (window state, lateness and label timing could make
a recomputation differ). So the evidence is taken at scoring time, from the very arrays the
rules were evaluated on, for the rows whose band reaches the alert band only (the rows that
can raise or join an alert: about 1% of a batch), and stored with the alert hits
(``alert_evidence``, :mod:`workbench.storage.writer`).

Built vectorized: one long Arrow table (``row``, ``rule_id``, ``name``, ``value``) with
``value`` already JSON text, made per (rule, name) with array operations — no loop over
rows, and only the alert-band rows are converted. The
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
_SCHEMA = pa.schema(
    [("row", pa.int64()), ("rule_id", pa.string()), ("name", pa.string()), ("value", pa.string())]
)


def empty() -> pa.Table:
    return _SCHEMA.empty_table()


def _picked(value: Any, rows: np.ndarray) -> pa.Array:
    """``value[rows]`` as an Arrow array (only those rows are converted)."""
    if isinstance(value, pd.Series):
        value = value.array
    if hasattr(value, "__arrow_array__"):
        return pa.array(value).take(pa.array(rows))
    return pa.array(np.asarray(value, dtype=object)[rows], from_pandas=True)


def _quoted(text: pa.Array) -> pa.Array:
    text = pc.replace_substring(pc.cast(text, pa.string()), "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null")


def _numbers(numbers: np.ndarray) -> pa.Array:
    text = pc.cast(pa.array(numbers), pa.string())
    return pc.if_else(pa.array(np.isfinite(numbers)), text, "null")


def json_values(value: Any, rows: np.ndarray) -> pa.Array:
    """``value[rows]`` as JSON text (numbers, true/false, quoted strings and ISO times,
    ``null`` for missing and non-finite), vectorized."""
    rows = np.asarray(rows)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        return _numbers(np.asarray(value[rows], dtype=np.float64))
    if isinstance(value, np.ndarray) and value.dtype.kind == "M":
        value = value[rows].astype("datetime64[us]")
        rows = np.arange(len(value))
    picked = _picked(value, rows)
    if pa.types.is_boolean(picked.type):
        return pc.fill_null(pc.cast(picked, pa.string()), "null")
    if pa.types.is_integer(picked.type) or pa.types.is_floating(picked.type):
        numbers = picked.to_numpy(zero_copy_only=False).astype(np.float64)
        return _numbers(numbers)
    if pa.types.is_timestamp(picked.type):
        return _quoted(pc.strftime(picked, format="%Y-%m-%dT%H:%M:%S.%fZ"))
    return _quoted(picked)


def collect(
    rules: Sequence[Rule], hits: np.ndarray, env: Mapping[str, Any], rows: np.ndarray
) -> pa.Table:
    """The evidence long table of ``rows`` (positions): for each rule (column of ``hits``)
    that hit one of them, every name its expression reads, with the value it read.

    Number and bool arrays (most features) are gathered first and turned into JSON text in
    one Arrow call each, so the cost hardly grows with the number of (rule, name) pairs."""
    selected = np.zeros(hits.shape[0], dtype=bool)
    selected[rows] = True
    names: list[str] = []
    # per kind of value: (positions, rule index, name index, values) parts
    parts: dict[str, list[tuple]] = {"number": [], "bool": [], "other": []}
    for j, rule in enumerate(rules):
        at = np.flatnonzero(hits[:, j] & selected)
        if not len(at):
            continue
        for name in sorted(rule.expr.fields):
            value = env.get(name)
            if value is None:
                continue
            names.append(name)
            k = len(names) - 1
            if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
                parts["number"].append((at, j, k, np.asarray(value[at], dtype=np.float64)))
            elif isinstance(value, np.ndarray) and value.dtype == bool:
                parts["bool"].append((at, j, k, value[at]))
            else:
                parts["other"].append((at, j, k, json_values(value, at)))
    found = [(kind, p) for kind, p in parts.items() if p]
    if not found:
        return empty()
    positions, rule_at, name_at, texts = [], [], [], []
    for kind, group in found:
        positions += [p[0] for p in group]
        rule_at += [np.full(len(p[0]), p[1], dtype=np.int32) for p in group]
        name_at += [np.full(len(p[0]), p[2], dtype=np.int32) for p in group]
        if kind == "number":
            texts.append(_numbers(np.concatenate([p[3] for p in group])))
        elif kind == "bool":
            texts.append(pc.cast(pa.array(np.concatenate([p[3] for p in group])), pa.string()))
        else:
            texts += [p[3] for p in group]
    rule_ids = pa.array([rule.id for rule in rules], pa.string())
    return pa.table(
        {
            "row": pa.array(np.concatenate(positions), pa.int64()),
            "rule_id": rule_ids.take(pa.array(np.concatenate(rule_at))),
            "name": pa.array(names, pa.string()).take(pa.array(np.concatenate(name_at))),
            "value": pa.concat_arrays(texts),
        },
        schema=_SCHEMA,
    )
