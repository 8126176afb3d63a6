"""The batch summary sent with ``pg_notify`` after every batch, always under 8000 bytes.

PostgreSQL refuses NOTIFY payloads of 8000 bytes or more, so the payload is bounded by
construction: fixed keys, every free-text value cut to :data:`MAX_TEXT` characters, at most
:data:`MAX_HIGH` High transactions with at most :data:`MAX_RULES` rule ids each, at most
:data:`MAX_ERRORS` rule-evaluation error counts; and if, against all odds, the JSON is still
too long, detail is dropped until it fits.

Listeners (the dashboard hub) ``LISTEN workbench_batches`` and decode with
:func:`decode_payload`. Keys: ``v`` (format version), ``worker``, ``source``, ``rows``
(stored), ``duplicates``, ``dead``, ``bands`` ({band: count}), ``mean_score``, ``p95_score``,
``alerts_opened``, ``alerts_attached``, ``min_ts``/``max_ts`` (ISO event time),
``rule_set_version``, ``created_at`` (epoch s the batch was read), ``latency_ms`` (read → about
to commit), ``eval_errors`` ({rule id: rows}), ``high`` (newest High transactions: ``tx_id``,
``ts``, ``card_id``, ``amount``, ``risk_score``, ``rules``), ``rule_hits`` ({rule id: rows of
the batch that hit it}, the :data:`MAX_RULE_HITS` most frequent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

CHANNEL = "workbench_batches"
LIMIT = 8000  # bytes; PostgreSQL's hard limit on a NOTIFY payload (exclusive)
MAX_TEXT = 48
MAX_HIGH = 5
MAX_RULES = 5
MAX_ERRORS = 10
MAX_RULE_HITS = 40
VERSION = 1


def short(value: object, limit: int = MAX_TEXT) -> str | None:
    """``value`` as text of at most ``limit`` characters (``None`` stays ``None``)."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def encode_payload(
    summary: Mapping[str, Any],
    high: Sequence[Mapping[str, Any]] = (),
    eval_errors: Mapping[str, int] | None = None,
    rule_hits: Mapping[str, int] | None = None,
) -> str:
    """Compact JSON of a batch summary, guaranteed shorter than :data:`LIMIT` bytes.

    ``summary`` holds the scalar keys listed in the module docstring; strings among them are
    shortened here. ``high`` are the newest High transactions, newest first.
    """
    body: dict[str, Any] = {"v": VERSION}
    for key, value in summary.items():
        body[str(short(key, 32))] = short(value) if isinstance(value, str) else value
    errors = sorted((eval_errors or {}).items(), key=lambda kv: -kv[1])[:MAX_ERRORS]
    body["eval_errors"] = {short(k): int(v) for k, v in errors}
    hits = sorted((rule_hits or {}).items(), key=lambda kv: -kv[1])[:MAX_RULE_HITS]
    body["rule_hits"] = {short(k): int(v) for k, v in hits}
    body["high"] = [_high(h) for h in list(high)[:MAX_HIGH]]
    text = _dumps(body)
    # Everything above is bounded, but bands or summary keys come from callers: shed detail
    # rather than ever sending a payload the server would reject.
    while len(text.encode()) >= LIMIT and body["high"]:
        body["high"].pop()
        text = _dumps(body)
    while len(text.encode()) >= LIMIT and body["rule_hits"]:
        body["rule_hits"].popitem()  # the least frequent first
        text = _dumps(body)
    if len(text.encode()) >= LIMIT:
        body["eval_errors"] = {}
        text = _dumps(body)
    if len(text.encode()) >= LIMIT:
        text = _dumps(
            {
                "v": VERSION,
                "truncated": True,
                **{k: summary[k] for k in ("rows", "dead") if k in summary},
            }
        )
    return text


def decode_payload(text: str) -> dict[str, Any]:
    """The summary dict of a NOTIFY payload."""
    return json.loads(text)


def _high(row: Mapping[str, Any]) -> dict[str, Any]:
    rules = row.get("rules") or {}
    if isinstance(rules, Mapping):  # {rule_id: points}: keep the heaviest rules
        rules = [k for k, _ in sorted(rules.items(), key=lambda kv: -float(kv[1] or 0))]
    ts = row.get("ts")
    return {
        "tx_id": short(row.get("tx_id")),
        "ts": ts.isoformat() if isinstance(ts, date) else short(ts),
        "card_id": short(row.get("card_id")),
        "amount": _num(row.get("amount")),
        "risk_score": _num(row.get("risk_score")),
        "rules": [short(r) for r in list(rules)[:MAX_RULES]],
    }


def _num(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return round(number, 2) if number == number else None


def _dumps(body: Mapping[str, Any]) -> str:
    # ASCII-only JSON: the byte length is then independent of the server encoding.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
