"""A rule's own examples: rows that must hit (``match``) or must not (``no_match``).

Examples are checked like the rule itself (known names, value types) and then run through
the rule's compiled expression as one small batch, so the code that scores the stream is the
code the examples test. Names an example leaves out are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench import schema
from workbench.rules.checker import closest
from workbench.rules.compiler import CompiledExpr, compile_expression
from workbench.rules.document import YNode

KINDS = ("match", "no_match")
MAX_EXAMPLES = 1000


def check_examples(
    node: YNode,
    expr: CompiledExpr,
    fields: Mapping[str, tuple[str, bool]],
    lists: Mapping[str, tuple],
    fail,
) -> dict[str, list[dict]]:
    """Validate and run the examples under ``node``; report problems through ``fail``
    (called as ``fail(message, node, suggestion=None)``). Returns the examples as data."""
    out: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    if node.kind != "map":
        fail("examples must be a mapping such as {match: [...], no_match: [...]}", node)
        return out
    rows: list[tuple[str, int, YNode, dict]] = []
    for key, (key_node, value) in node.value.items():
        if key not in KINDS:
            fail(f"unknown key '{key}' in examples", key_node, closest(key, KINDS))
            continue
        if value.kind != "seq":
            fail(f"examples {key} must be a list of mappings", value)
            continue
        for i, item in enumerate(value.value):
            row = _row(item, f"{key}[{i}]", fields, fail)
            if row is not None:
                rows.append((key, i, item, row))
                out[key].append({k: _plain(v) for k, v in row.items()})
    if len(rows) > MAX_EXAMPLES:
        fail(f"too many examples (at most {MAX_EXAMPLES})", node)
        return out
    if rows:
        _run(rows, expr, fields, lists, fail)
    return out


def _row(item: YNode, label: str, fields, fail) -> dict | None:
    if item.kind != "map":
        fail(f"example {label} must be a mapping of field name to value", item)
        return None
    row, ok = {}, True
    for name, (key_node, value) in item.value.items():
        if name not in fields:
            if name in schema.LABELS:
                fail(f"field '{name}' is a label and cannot be used in rules", key_node)
            else:
                fail(f"unknown field '{name}' in example {label}", key_node, closest(name, fields))
            ok = False
            continue
        kind = fields[name][0]
        converted = _convert(value, kind)
        if converted is _BAD:
            hint = " (quote it)" if kind == "string" and value.kind == "scalar" else ""
            fail(
                f"example {label}: '{name}' must be {_article(kind)}, got "
                f"{value.text or value.kind!r}{hint}",
                value,
            )
            ok = False
            continue
        row[name] = converted
    return row if ok else None


_BAD = object()


def _convert(node: YNode, kind: str) -> Any:
    if node.kind != "scalar":
        return _BAD
    value = node.value
    if value is None:
        return None
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
        return float(value) if ok else _BAD
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD
    if kind == "string":
        return value if isinstance(value, str) else _BAD
    try:  # timestamp
        stamp = pd.Timestamp(value) if isinstance(value, str) else _BAD
    except (ValueError, TypeError, OverflowError):
        return _BAD
    if stamp is _BAD or pd.isna(stamp):
        return _BAD
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, pd.Timestamp) else value


def _run(rows, expr: CompiledExpr, fields, lists, fail) -> None:
    n = len(rows)
    env: dict[str, Any] = {}
    gaps = False
    for name in expr.fields:
        kind, nullable = fields[name]
        column = [row.get(name) for _, _, _, row in rows]
        gaps |= not nullable and any(v is None for v in column)
        env[name] = _column(kind, column)
    if gaps:
        # A value the stream always has is left out: evaluate with it allowed to be missing,
        # so that a missing input reads as unknown rather than as whatever NaN compares to.
        relaxed = {k: (t, True) for k, (t, _) in fields.items()}
        expr = compile_expression(expr.source, fields=relaxed, lists=lists)
    hit, err = expr(env, n)
    for (kind, i, item, _), got, bad in zip(rows, hit, err, strict=True):
        if kind == "match" and not got:
            why = " (a data error left it unknown)" if bad else ""
            fail(f"example match[{i}] does not hit{why}", item)
        elif kind == "no_match" and got:
            fail(f"example no_match[{i}] hits but should not", item)


def _column(kind: str, values: list) -> Any:
    if kind == "number":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "string":
        return pd.Series(values, dtype="str")
    if kind == "bool":
        if any(v is None for v in values):
            return pd.array(values, dtype="boolean")
        return np.array(values, dtype=bool)
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _article(kind: str) -> str:
    return {
        "number": "a number",
        "bool": "true or false",
        "string": "a string",
        "timestamp": "a timestamp such as '2024-05-01T12:00:00Z'",
    }[kind]
