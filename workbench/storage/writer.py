"""Writing one scored batch: one PostgreSQL transaction, bulk COPY, idempotent on (tx_id, ts).

Per batch:

1. partitions for the batch's days are ensured (cached; a short transaction of its own);
2. in ONE transaction: the rows and the long ``hits`` frame are turned into CSV by pyarrow
   (vectorized, no per-row Python) and COPYed into session temp tables; one statement inserts
   into ``transactions`` with ``ON CONFLICT (tx_id, ts) DO NOTHING``, building ``rule_hits``
   with ``jsonb_object_agg``, and returns the summary of the rows actually stored (so a
   replayed batch stores nothing, opens no alert and counts nothing twice); alerts are raised
   set-based (:mod:`workbench.storage.alerting`); dead letters are COPYed; a ``pipeline_stats``
   row is added; one ``pg_notify`` carries the summary (:mod:`workbench.storage.notify`);
3. commit. Listeners see the notification only once the data is visible.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from workbench.errors import ConfigError, DatabaseUnavailable, StorageError
from workbench.schema import COLUMNS, NAMES
from workbench.scoring.result import BANDS, ScoredBatch
from workbench.storage import alerting, notify, partitions
from workbench.storage.connection import one_line, require_idle, unavailable

_SCORE_COLUMNS = ("risk_score", "band", "rule_set_version")
_PG_TYPES = {"str": "text", "timestamp": "bigint", "float": "double precision", "bool": "boolean"}
# Staged ts is epoch microseconds: exact, and far cheaper to parse than timestamp text.
_STAGE_COLUMNS = ("pos", *(("ts_us" if n == "ts" else n) for n in NAMES), *_SCORE_COLUMNS)

_STAGE_DDL = (
    "CREATE TEMP TABLE wb_stage_tx (pos integer, "
    + ", ".join(f"{'ts_us' if c.name == 'ts' else c.name} {_PG_TYPES[c.kind]}" for c in COLUMNS)
    + ", risk_score double precision, band text, rule_set_version text) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE wb_stage_hits (pos integer, rule_id text, points double precision)"
    " ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE wb_stage_dead (source text, worker text, raw text, reason text)"
    " ON COMMIT DELETE ROWS;" + alerting.STAGE_DDL
)

_BAND_COUNTS = ", ".join(f"count(*) FILTER (WHERE band = '{b}')" for b in BANDS)

_INSERT = sql.SQL("""
WITH h AS (
    SELECT pos, jsonb_object_agg(rule_id, points) AS rule_hits
    FROM wb_stage_hits GROUP BY pos
), ins AS (
    INSERT INTO transactions ({columns}, risk_score, band, rule_hits, rule_set_version)
    SELECT {values}, s.risk_score, s.band, coalesce(h.rule_hits, '{{}}'::jsonb),
           s.rule_set_version
    FROM wb_stage_tx s LEFT JOIN h ON h.pos = s.pos
    ON CONFLICT (tx_id, ts) DO NOTHING
    RETURNING tx_id, ts, card_id, amount, risk_score, band, rule_hits, rule_set_version
), kept AS (
    INSERT INTO wb_stage_alert (tx_id, ts, card_id, amount, risk_score, band, rule_hits,
                                rule_set_version, alertable)
    SELECT tx_id, ts, card_id, amount, risk_score, band, rule_hits, rule_set_version,
           coalesce(array_position(%(bands)s, band) >= %(alert_rank)s, false)
    FROM ins WHERE array_position(%(bands)s, band) >= %(keep_rank)s
    RETURNING alertable
)
SELECT count(*), {band_counts}, avg(risk_score),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY risk_score), min(ts), max(ts),
       (SELECT count(*) FILTER (WHERE alertable) FROM kept)
FROM ins
""").format(
    columns=sql.SQL(", ").join(sql.Identifier(n) for n in NAMES),
    values=sql.SQL(", ").join(
        sql.SQL("'epoch'::timestamptz + s.ts_us * interval '1 microsecond'")
        if n == "ts"
        else sql.SQL("s.{}").format(sql.Identifier(n))
        for n in NAMES
    ),
    band_counts=sql.SQL(_BAND_COUNTS),
)

_NEWEST_HIGH = (
    "SELECT tx_id, ts, card_id, amount, risk_score, rule_hits FROM wb_stage_alert"
    " WHERE band = %s ORDER BY ts DESC, tx_id DESC LIMIT %s"
)

_STATS = """
INSERT INTO pipeline_stats (worker, source, batch_created_at, stored, duplicates, dead,
                            alerts_opened, alerts_attached, rule_set_version, min_ts, max_ts,
                            latency_s)
VALUES (%(worker)s, %(source)s, to_timestamp(%(created_at)s), %(stored)s, %(duplicates)s,
        %(dead)s, %(alerts_opened)s, %(alerts_attached)s, %(rule_set_version)s, %(min_ts)s,
        %(max_ts)s, extract(epoch FROM clock_timestamp()) - %(created_at)s)
"""

# Connections whose session already has the staging temp tables.
_staged: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()


@dataclass(frozen=True)
class WriteResult:
    """What one :func:`write_batch` did. ``summary`` is the decoded NOTIFY payload."""

    stored: int
    duplicates: int
    dead: int
    alerts_opened: int
    alerts_attached: int
    summary: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def band_rank(band: str | None) -> int:
    """1-based rank of a band name (case-insensitive) in BANDS; 0 for ``None``/"none"/"off"
    (no alerts)."""
    if band is None or band.strip().lower() in ("none", "off", ""):
        return 0
    for i, name in enumerate(BANDS, start=1):
        if name.lower() == band.strip().lower():
            return i
    raise ConfigError(f"unknown alert band {band!r}: use one of {', '.join(BANDS)} or none")


def write_batch(
    conn: psycopg.Connection,
    scored: ScoredBatch,
    *,
    alert_min_band: str | None = "High",
    alert_dedup_s: float = 600.0,
    source: str = "",
    worker: str = "",
) -> WriteResult:
    """Store a scored batch in one transaction and NOTIFY ``workbench_batches``; see module doc.

    Writing the same batch twice stores it once. ``alert_min_band``: lowest band that raises
    an alert (``None``/"none": no alerts). ``alert_dedup_s``: event-time window in which a
    card's qualifying transactions join its open alert. Raises :class:`StorageError`.
    """
    alert_rank = band_rank(alert_min_band)
    require_idle(conn, "write a batch")
    frame, dead = scored.frame, scored.dead
    if len(frame) == 0 and len(dead) == 0:
        return WriteResult(0, 0, 0, 0, 0)
    tx_csv = _csv(_tx_table(frame)) if len(frame) else None
    hits_csv = _csv(_hits_table(scored.hits, len(frame))) if len(scored.hits) else None
    dead_csv = _csv(_dead_table(dead, source, worker)) if len(dead) else None
    days = _days(frame)
    for attempt in (1, 2):
        try:
            partitions.ensure_days(conn, days)
            _ensure_staging(conn)
            return _write(
                conn,
                scored,
                tx_csv,
                hits_csv,
                dead_csv,
                alert_rank,
                timedelta(seconds=alert_dedup_s),
                source,
                worker,
            )
        except psycopg.errors.CheckViolation as exc:
            # Stale partition cache (another process applied retention): refresh, retry once.
            partitions.forget(conn)
            if attempt == 2 or "no partition" not in str(exc):
                raise StorageError(f"cannot write batch: {one_line(exc)}") from exc
        except psycopg.Error as exc:
            _staged.discard(conn)
            partitions.forget(conn)
            kind = DatabaseUnavailable if unavailable(exc) else StorageError
            raise kind(f"cannot write batch: {one_line(exc)}") from exc
    raise AssertionError("unreachable")


def _write(
    conn: psycopg.Connection,
    scored: ScoredBatch,
    tx_csv: pa.Buffer | None,
    hits_csv: pa.Buffer | None,
    dead_csv: pa.Buffer | None,
    alert_rank: int,
    dedup: timedelta,
    source: str,
    worker: str,
) -> WriteResult:
    frame = scored.frame
    high_rank = len(BANDS)
    keep_rank = min(alert_rank or high_rank, high_rank)
    with conn.transaction(), conn.cursor() as cur:
        # The per-row rule_hits aggregate spills to disk at the default 4MB work_mem.
        cur.execute("SET LOCAL work_mem = '64MB'")
        _copy(cur, "wb_stage_tx", _STAGE_COLUMNS, tx_csv)
        _copy(cur, "wb_stage_hits", ("pos", "rule_id", "points"), hits_csv)
        row = cur.execute(
            _INSERT, {"bands": list(BANDS), "alert_rank": alert_rank or 99, "keep_rank": keep_rank}
        ).fetchone()
        assert row is not None
        stored, *band_counts = row[: 1 + len(BANDS)]
        mean, p95, min_ts, max_ts, alertable = row[1 + len(BANDS) :]
        opened = attached = 0
        if alertable:
            opened, attached = alerting.raise_alerts(cur, dedup)
        high = [
            dict(zip(("tx_id", "ts", "card_id", "amount", "risk_score", "rules"), r, strict=True))
            for r in cur.execute(_NEWEST_HIGH, (BANDS[-1], notify.MAX_HIGH))
        ]
        _copy(cur, "wb_stage_dead", ("source", "worker", "raw", "reason"), dead_csv)
        if dead_csv is not None:
            cur.execute(
                "INSERT INTO dead_letters (source, worker, raw, reason)"
                " SELECT source, worker, raw, reason FROM wb_stage_dead"
            )
        versions = frame["rule_set_version"] if "rule_set_version" in frame else pd.Series([])
        version = str(versions.iloc[-1]) if len(versions) else None
        stats = {
            "worker": worker,
            "source": source,
            "created_at": scored.created_at,
            "stored": stored,
            "duplicates": len(frame) - stored,
            "dead": len(scored.dead),
            "alerts_opened": opened,
            "alerts_attached": attached,
            "rule_set_version": version,
            "min_ts": min_ts,
            "max_ts": max_ts,
        }
        cur.execute(_STATS, stats)
        summary = {
            "worker": worker,
            "source": source,
            "rows": stored,
            "duplicates": len(frame) - stored,
            "dead": len(scored.dead),
            "bands": dict(zip(BANDS, band_counts, strict=True)),
            "mean_score": _round(mean),
            "p95_score": _round(p95),
            "alerts_opened": opened,
            "alerts_attached": attached,
            "min_ts": min_ts.isoformat() if min_ts else None,
            "max_ts": max_ts.isoformat() if max_ts else None,
            "rule_set_version": version,
            "created_at": round(scored.created_at, 3),
            "latency_ms": round((time.time() - scored.created_at) * 1000.0, 1),
        }
        payload = notify.encode_payload(summary, high, scored.eval_errors)
        cur.execute("SELECT pg_notify(%s, %s)", (notify.CHANNEL, payload))
    return WriteResult(
        stored,
        len(frame) - stored,
        len(scored.dead),
        opened,
        attached,
        notify.decode_payload(payload),
    )


def _ensure_staging(conn: psycopg.Connection) -> None:
    if conn in _staged:
        return
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass('pg_temp.wb_stage_tx')").fetchone()
        if exists is None or exists[0] is None:
            conn.execute(_STAGE_DDL)
    _staged.add(conn)


def _copy(
    cur: psycopg.Cursor, table: str, columns: tuple[str, ...], data: pa.Buffer | None
) -> None:
    if data is None:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with cur.copy(statement) as copy:
        copy.write(memoryview(data))


def _csv(table: pa.Table) -> pa.Buffer:
    # pyarrow quotes every string and leaves nulls bare: exactly PostgreSQL's CSV convention
    # for telling '' from NULL.
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, batch_size=16384))
    return sink.getvalue()


def _tx_table(frame: pd.DataFrame) -> pa.Table:
    arrays: list[pa.Array] = [pa.array(np.arange(len(frame), dtype=np.int32))]
    for col in COLUMNS:
        series = frame[col.name]
        if col.kind == "timestamp":
            arrays.append(pa.array(_epoch_us(series)))
        else:
            arrays.append(_arrow(series))
    for name in _SCORE_COLUMNS:
        arrays.append(_arrow(frame[name]))
    return pa.Table.from_arrays(arrays, names=list(_STAGE_COLUMNS))


def _hits_table(hits: pd.DataFrame, n_rows: int) -> pa.Table:
    rows = hits["row"].to_numpy(dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise StorageError(f"hits refer to row {int(rows.max())}, the batch has {n_rows} rows")
    return pa.Table.from_arrays(
        [
            pa.array(rows.astype(np.int32)),
            _arrow(hits["rule_id"]),
            _arrow(hits["points"].astype("float64")),
        ],
        names=["pos", "rule_id", "points"],
    )


def _dead_table(dead: pd.DataFrame, source: str, worker: str) -> pa.Table:
    n = len(dead)
    return pa.Table.from_arrays(
        [
            pa.array([source] * n, pa.string()),
            pa.array([worker] * n, pa.string()),
            _arrow(dead["raw"].fillna("")),
            _arrow(dead["reason"].fillna("")),
        ],
        names=["source", "worker", "raw", "reason"],
    )


def _arrow(series: pd.Series) -> pa.Array:
    array = pa.array(series, from_pandas=True)  # NaN -> null
    if isinstance(array, pa.ChunkedArray):
        # pyarrow's CSV writer garbles a chunked column whose first chunk is empty (seen with
        # pyarrow 26: NUL bytes instead of text), so always hand it one contiguous array.
        array = array.combine_chunks()
    if pa.types.is_large_string(array.type) or pa.types.is_string(array.type):
        # PostgreSQL text cannot hold NUL: one bad byte must not sink the whole batch.
        if pc.any(pc.match_substring(array, "\x00")).as_py():
            array = pc.replace_substring(array, "\x00", "\ufffd")
    elif pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


def _epoch_us(series: pd.Series) -> np.ndarray:
    values = series.dt.tz_convert("UTC") if series.dt.tz is not None else series
    return values.dt.as_unit("us").dt.tz_localize(None).to_numpy().view(np.int64)


def _days(frame: pd.DataFrame) -> list:
    if len(frame) == 0:
        return []
    micros = _epoch_us(frame["ts"])
    day_numbers = np.unique(micros // 86_400_000_000)
    # One day ahead of the newest: the partition exists before the stream crosses midnight.
    day_numbers = np.union1d(day_numbers, day_numbers[-1:] + 1)
    return [d.date() for d in pd.to_datetime(day_numbers, unit="D").to_pydatetime()]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
