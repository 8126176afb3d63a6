"""The batch summary sent with ``pg_notify`` after every batch, always under 8000 bytes.

PostgreSQL refuses NOTIFY payloads of 8000 bytes or more, so the payload is bounded by
construction: fixed keys, every free-text value cut to :data:`MAX_TEXT` characters, at most
:data:`MAX_HIGH` High transactions with at most :data:`MAX_RULES` rule ids each, at most
:data:`MAX_ERRORS` rule-evaluation error counts; and if, against all odds, the JSON is still
too long, detail is dropped until it fits.

The summary is one typed value, :class:`BatchSummary`: the writer builds it once per batch, its
fields fill the batch's ``pipeline_stats`` row, :meth:`BatchSummary.payload` is the NOTIFY
payload, and listeners (the dashboard hub, ``LISTEN workbench_batches``) read it back with
:meth:`BatchSummary.from_payload`. Payload keys: ``v`` (format version), ``worker``,
``source``, ``rows`` (stored), ``duplicates``, ``dead``, ``bands`` ({band: count}),
``mean_score``, ``p95_score``, ``alerts_opened``, ``alerts_attached``, ``min_ts``/``max_ts``
(ISO event time), ``rule_set_version``, ``created_at`` (epoch s the batch was read),
``latency_ms`` (read → about to commit), ``eval_errors`` ({rule id: rows}), ``high`` (newest
High transactions: ``tx_id``, ``ts``, ``card_id``, ``amount``, ``risk_score``, ``rules``),
``rule_hits`` ({rule id: rows of the batch that hit it}, the :data:`MAX_RULE_HITS` most
frequent).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from workbench.bands import LABELS

CHANNEL = "workbench_batches"
LIMIT = 8000  # bytes; PostgreSQL's hard limit on a NOTIFY payload (exclusive)
MAX_TEXT = 48
MAX_HIGH = 5
MAX_RULES = 5
MAX_ERRORS = 10
MAX_RULE_HITS = 40
VERSION = 2


def short(value: object, limit: int = MAX_TEXT) -> str | None:
    """``value`` as text of at most ``limit`` characters (``None`` stays ``None``)."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class HighRow:
    """One of the newest High transactions of a batch, as the live feed shows it."""

    tx_id: str | None = None
    ts: str | None = None  # ISO 8601 event time
    card_id: str | None = None
    amount: float | None = None
    risk_score: float | None = None
    rules: tuple[str, ...] = ()  # heaviest first

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> HighRow:
        """From a stored row (``rules`` as {rule id: points}) or a decoded payload entry
        (``rules`` as a list), every text bounded."""
        rules = row.get("rules") or {}
        if isinstance(rules, Mapping):  # {rule_id: points}: keep the heaviest rules
            rules = [k for k, _ in sorted(rules.items(), key=lambda kv: -float(kv[1] or 0))]
        ts = row.get("ts")
        return cls(
            tx_id=short(row.get("tx_id")),
            ts=ts.isoformat() if isinstance(ts, date) else short(ts),
            card_id=short(row.get("card_id")),
            amount=_num(row.get("amount")),
            risk_score=_num(row.get("risk_score")),
            rules=tuple(str(short(r)) for r in list(rules)[:MAX_RULES]),
        )


@dataclass(frozen=True)
class BatchSummary:
    """What one committed batch did. ``rows`` were stored, ``duplicates`` were stored
    already, ``dead`` became dead letters (records read = rows + duplicates + dead).
    ``bands`` counts the stored rows per band label; ``min_ts``/``max_ts`` bound their event
    time; ``created_at`` is when the batch was read (epoch s) and ``latency_ms`` the time
    from then to just before the commit. ``truncated`` marks a payload that had to shed
    everything but the counts."""

    worker: str = ""
    source: str = ""
    rows: int = 0
    duplicates: int = 0
    dead: int = 0
    bands: Mapping[str, int] = field(default_factory=dict)
    mean_score: float | None = None
    p95_score: float | None = None
    alerts_opened: int = 0
    alerts_attached: int = 0
    min_ts: datetime | None = None
    max_ts: datetime | None = None
    rule_set_version: str | None = None
    created_at: float = 0.0
    latency_ms: float | None = None
    eval_errors: Mapping[str, int] = field(default_factory=dict)
    rule_hits: Mapping[str, int] = field(default_factory=dict)
    high: tuple[HighRow, ...] = ()
    truncated: bool = False
    partitions: list[int] | None = None  # a partitioned source's, when the batch was read
    lag: int | None = None  # messages behind the log's end then (display only)
    offsets: Mapping[int, int] | None = None  # a partitioned source's next offsets

    def band(self, label: str) -> int:
        """Stored rows of the band ``label`` (0 when none)."""
        return int(self.bands.get(label, 0))

    def stats_row(self) -> dict[str, Any]:
        """The batch's ``pipeline_stats`` values."""
        return {
            "worker": self.worker,
            "source": self.source,
            "created_at": self.created_at,
            "stored": self.rows,
            "duplicates": self.duplicates,
            "dead": self.dead,
            "alerts_opened": self.alerts_opened,
            "alerts_attached": self.alerts_attached,
            "rule_set_version": self.rule_set_version,
            "min_ts": self.min_ts,
            "max_ts": self.max_ts,
            "partitions": self.partitions,
            "lag": self.lag,
            "offsets": None if self.offsets is None else json.dumps(dict(self.offsets)),
        }

    def payload(self) -> str:
        """Compact JSON, guaranteed shorter than :data:`LIMIT` bytes: every text shortened,
        at most :data:`MAX_HIGH` rows, :data:`MAX_ERRORS` error counts and
        :data:`MAX_RULE_HITS` rule counts, and detail shed if it still does not fit."""
        body: dict[str, Any] = {"v": VERSION}
        for key in _SCALARS:
            value = getattr(self, key)
            if isinstance(value, datetime):
                value = value.isoformat()
            body[key] = short(value) if isinstance(value, str) else value
        body["bands"] = {str(short(k, 32)): int(v) for k, v in self.bands.items()}
        errors = sorted(self.eval_errors.items(), key=lambda kv: -kv[1])[:MAX_ERRORS]
        body["eval_errors"] = {short(k): int(v) for k, v in errors}
        hits = sorted(self.rule_hits.items(), key=lambda kv: -kv[1])[:MAX_RULE_HITS]
        body["rule_hits"] = {short(k): int(v) for k, v in hits}
        body["high"] = [_high_body(h) for h in self.high[:MAX_HIGH]]
        text = _dumps(body)
        # Everything above is bounded, but shed detail rather than ever send a payload the
        # server would reject.
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
            text = _dumps({"v": VERSION, "truncated": True, "rows": self.rows, "dead": self.dead})
        return text

    @classmethod
    def from_payload(cls, text: str | bytes) -> BatchSummary:
        """The summary a payload carries; missing keys take their defaults, values of the
        wrong type are dropped (a payload is data from another process)."""
        body = json.loads(text)
        if not isinstance(body, dict):
            return cls(truncated=True)
        fields: dict[str, Any] = {}
        for key, kind in _SCALARS.items():
            value = body.get(key)
            if key in ("min_ts", "max_ts"):
                fields[key] = _timestamp(value)
            elif value is not None:
                converted = _convert(value, kind)
                if converted is not None:
                    fields[key] = converted
        fields["bands"] = _counts(body.get("bands"))
        fields["eval_errors"] = _counts(body.get("eval_errors"))
        fields["rule_hits"] = _counts(body.get("rule_hits"))
        high = body.get("high") if isinstance(body.get("high"), list) else []
        fields["high"] = tuple(HighRow.of(h) for h in high if isinstance(h, dict))
        fields["truncated"] = bool(body.get("truncated", False))
        return cls(**fields)


_SCALARS: dict[str, type] = {
    "worker": str,
    "source": str,
    "rows": int,
    "duplicates": int,
    "dead": int,
    "mean_score": float,
    "p95_score": float,
    "alerts_opened": int,
    "alerts_attached": int,
    "min_ts": str,
    "max_ts": str,
    "rule_set_version": str,
    "created_at": float,
    "latency_ms": float,
}


def summarize(
    *,
    worker: str,
    source: str,
    rows: int,
    duplicates: int,
    dead: int,
    band_counts: Sequence[int],
    mean_score: float | None,
    p95_score: float | None,
    alerts_opened: int,
    alerts_attached: int,
    min_ts: datetime | None,
    max_ts: datetime | None,
    rule_set_version: str | None,
    created_at: float,
    latency_ms: float,
    eval_errors: Mapping[str, int] | None = None,
    rule_hits: Mapping[str, int] | None = None,
    high: Sequence[Mapping[str, Any]] = (),
    partitions: Sequence[int] | None = None,
    lag: int | None = None,
    offsets: Mapping[int, int] | None = None,
) -> BatchSummary:
    """The summary of a written batch, numbers rounded as they are shown (scores to 0.001,
    latency to 0.1 ms); ``band_counts`` in band order, ``high`` newest first."""
    return BatchSummary(
        worker=worker,
        source=source,
        rows=int(rows),
        duplicates=int(duplicates),
        dead=int(dead),
        bands=dict(zip(LABELS, (int(c) for c in band_counts), strict=True)),
        mean_score=_round(mean_score),
        p95_score=_round(p95_score),
        alerts_opened=int(alerts_opened),
        alerts_attached=int(alerts_attached),
        min_ts=min_ts,
        max_ts=max_ts,
        rule_set_version=rule_set_version,
        created_at=round(float(created_at), 3),
        latency_ms=round(float(latency_ms), 1),
        eval_errors=dict(eval_errors or {}),
        rule_hits=dict(rule_hits or {}),
        high=tuple(HighRow.of(h) for h in list(high)[:MAX_HIGH]),
        partitions=None if partitions is None else [int(p) for p in partitions],
        lag=None if lag is None else int(lag),
        offsets=None if offsets is None else {int(k): int(v) for k, v in offsets.items()},
    )


def _high_body(row: HighRow) -> dict[str, Any]:
    return {
        "tx_id": row.tx_id,
        "ts": row.ts,
        "card_id": row.card_id,
        "amount": row.amount,
        "risk_score": row.risk_score,
        "rules": list(row.rules),
    }


def _convert(value: Any, kind: type) -> Any:
    try:
        if kind is str:
            return str(value)
        if kind is int:
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    except (TypeError, ValueError):
        return None


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, count in value.items():
        number = _convert(count, int)
        if number is not None:
            out[str(key)] = number
    return out


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _num(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(number, 2) if math.isfinite(number) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _dumps(body: Mapping[str, Any]) -> str:
    # ASCII-only JSON: the byte length is then independent of the server encoding.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
