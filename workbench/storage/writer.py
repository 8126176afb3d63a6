"""Writing one scored batch: one PostgreSQL transaction, bulk COPY, idempotent on tx_id.

A transaction's identity is its ``tx_id``, whatever its timestamp: the unpartitioned table
``transaction_ids (tx_id PRIMARY KEY, ts_us)`` is written in the same database transaction as
the rows (``transactions`` is partitioned by ``ts``, so its own key has to include ``ts``).
``ts_us`` is the ts in epoch microseconds: sent as an integer, it costs the server no
timestamp parsing (measured: a third of the cost of that table's COPY).
An id is remembered as long as the partition of its ``ts`` is kept: retention deletes the
ids of the partitions it drops (:func:`workbench.storage.partitions.retention`).

Per batch:

1. partitions for the batch's days are ensured (known days remembered by the
   :class:`BatchWriter`; a short transaction of its own);
2. in ONE transaction the rows are stored, by one of two paths that store the same thing:

   - *direct* (the usual case): the rows, with ``rule_hits`` as JSON text, are encoded in
     PostgreSQL's binary COPY format by numpy (:mod:`workbench.storage.binary_copy`:
     vectorized, no per-row Python; CSV by pyarrow when an amount is off the cent grid) and
     COPYed straight into ``transactions``, and the ``(tx_id, ts_us)`` pairs (binary too) into
     ``transaction_ids``, whose primary
     key is the arbiter: if any id is stored already (a replayed batch, a duplicate inside
     the batch, the same tx_id with another ts, another worker), that COPY fails with a
     unique violation, the transaction is rolled back whole, and the batch takes the staging
     path. The summary of the stored rows (all of them) is computed from the batch.
   - *staging*: the rows and the long ``hits`` frame are COPYed into session temp tables; one
     statement inserts the ids into ``transaction_ids`` ``ON CONFLICT DO NOTHING`` (the
     earliest ts of an id repeated inside the batch first), then into ``transactions`` only
     the rows whose id it returned, building ``rule_hits`` with ``jsonb_object_agg``, and
     returns the summary of the rows actually stored (so a replayed batch stores nothing,
     opens no alert and counts nothing twice). A :class:`BatchWriter` whose last batch met
     stored rows stays on this path until a batch has none, so a replay does not pay for a
     failed COPY on every batch.

   Then, on both paths: alerts are raised set-based from the stored rows that reach the alert
   band (:mod:`workbench.storage.alerting`); dead letters are COPYed, each stored once
   (a unique fingerprint of source, raw text and reason: a replay adds none); a
   ``pipeline_stats`` row is added; one ``pg_notify`` carries the summary
   (:mod:`workbench.storage.notify`);
3. commit. Listeners see the notification only once the data is visible.

What a connection's writes remember — that path's stickiness, whether the session has the
staging temp tables, the partition days known to exist — is the state of one
:class:`BatchWriter` per connection (the pipeline keeps one per connection it opens).
:func:`write_batch` is the one-shot form: it remembers nothing between calls, so each call
checks the partitions and temp tables again (two short queries).

Binary rather than CSV because the server then parses no text (timestamps, numerics,
doubles): a raw COPY of the same rows runs 1.25-1.47x as many rows per second as binary
(bench_pipeline). The whole write gains less (measured 1.02-1.04x against the CSV writer,
interleaved): the ids, the alerts and the commit stay, and encoding costs ~1.6 ms more client
CPU per 5,000 rows than pyarrow's CSV.

The direct path costs about half the staging path per row (measured: COPY into the table
with its indexes vs COPY into a temp table plus a speculative ``INSERT ... ON CONFLICT``).

Failures are raised as the :class:`StorageError` their SQLSTATE calls for
(:func:`~workbench.storage.connection.translate`): :class:`DatabaseUnavailable` (retry),
:class:`DataRefused` (some rows' values: the transaction is rolled back and the connection is
left usable, so the caller can isolate them, see :mod:`workbench.storage.isolation`) or
:class:`SchemaError` (stop).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from workbench import bands
from workbench.errors import DataRefused
from workbench.schema import NAMES
from workbench.scoring.result import ScoredBatch
from workbench.storage import alerting, notify, partitions
from workbench.storage.connection import require_idle, translate
from workbench.storage.prepared import (
    ALERT_COLUMNS,
    DIRECT_COLUMNS,
    SCORE_COLUMNS,
    STAGE_COLUMNS,
    PreparedBatch,
)
from workbench.storage.tables import postgres_type, transactions

# The staged row has the stored types (taken from the table declaration, so money is staged
# as numeric(14,2) too: batches hold float64 values on the cent grid, read back exactly).
_STAGE_TYPES = {
    ("ts_us" if n == "ts" else n): ("bigint" if n == "ts" else postgres_type(transactions.c[n]))
    for n in (*NAMES, *SCORE_COLUMNS)
}

# The session's staging tables keep their rows at commit; each batch's last statement
# (_FINISH) deletes what it staged. "ON COMMIT DELETE ROWS" would truncate every one of them
# (with its TOAST table and index: 21 relations, each a file truncation) at each commit of a
# transaction that touched any temp table, which every batch does (the alert stage): measured
# +0.9 ms per commit on a quiet machine, +20 ms while other processes kept the disk busy.
# Deleting the rows a batch staged costs less and touches no file; their
# dead tuples (temp tables are never vacuumed) are cut back by a TRUNCATE at the start of
# every _TRUNCATE_EVERY-th batch. A transaction that fails leaves nothing: its rows roll back.
_STAGE_DDL = (
    "CREATE TEMP TABLE wb_stage_tx (pos integer, "
    + ", ".join(f"{n} {t}" for n, t in _STAGE_TYPES.items())
    + ");"
    "CREATE TEMP TABLE wb_stage_hits (pos integer, rule_id text, points double precision);"
    "CREATE TEMP TABLE wb_stage_dead (source text, worker text, raw text, reason text);"
    "CREATE TEMP TABLE wb_stage_evidence (tx_id text, ts_us bigint, rule_id text, name text,"
    " value text);"
    "CREATE TEMP TABLE wb_stage_shadow (tx_id text, ts timestamptz, risk_score double precision,"
    " band text, rule_hits jsonb, rule_set_version text);" + alerting.STAGE_DDL
)
_STAGE_TABLES = (
    "wb_stage_tx", "wb_stage_hits", "wb_stage_dead", "wb_stage_evidence", "wb_stage_shadow",
    "wb_stage_alert", "wb_stage_group",
)  # fmt: skip
_TRUNCATE = "TRUNCATE " + ", ".join(_STAGE_TABLES)
_TRUNCATE_EVERY = 64

_STAGED_TS = sql.SQL("'epoch'::timestamptz + s.ts_us * interval '1 microsecond'")

_BAND_COUNTS = ", ".join(f"count(*) FILTER (WHERE band = '{b}')" for b in bands.LABELS)

# Only the rows whose tx_id is new get in: an id already stored (whatever its ts) or
# repeated in the batch is a duplicate. Inside the batch the earliest ts wins (then the
# first position), like the backfill of migration 6: ``first`` picks that one row per id,
# and ``ids`` says which of those ids were new.
_INSERT = sql.SQL("""
WITH h AS (
    SELECT pos, jsonb_object_agg(rule_id, points) AS rule_hits
    FROM wb_stage_hits GROUP BY pos
), first AS (
    SELECT DISTINCT ON (tx_id) tx_id, ts_us, pos FROM wb_stage_tx ORDER BY tx_id, ts_us, pos
), ids AS (
    INSERT INTO transaction_ids (tx_id, ts_us)
    SELECT tx_id, ts_us FROM first ORDER BY ts_us, pos
    ON CONFLICT (tx_id) DO NOTHING
    RETURNING tx_id
), ins AS (
    INSERT INTO transactions ({columns}, risk_score, band, rule_hits, rule_set_version)
    SELECT {values}, s.risk_score, s.band, coalesce(h.rule_hits, '{{}}'::jsonb),
           s.rule_set_version
    FROM ids JOIN first f ON f.tx_id = ids.tx_id JOIN wb_stage_tx s ON s.pos = f.pos
    LEFT JOIN h ON h.pos = s.pos
    RETURNING tx_id, ts, card_id, amount, currency, risk_score, band, rule_hits,
              rule_set_version
), kept AS (
    INSERT INTO wb_stage_alert (tx_id, ts, card_id, amount, currency, risk_score, band,
                                rule_hits, rule_set_version, alertable)
    SELECT tx_id, ts, card_id, amount, currency, risk_score, band, rule_hits, rule_set_version,
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
        _STAGED_TS if n == "ts" else sql.SQL("s.{}").format(sql.Identifier(n)) for n in NAMES
    ),
    band_counts=sql.SQL(_BAND_COUNTS),
)

_NEWEST_HIGH = (
    "SELECT tx_id, ts, card_id, amount, risk_score, rule_hits FROM wb_stage_alert"
    " WHERE band = {band} ORDER BY ts DESC, tx_id DESC LIMIT {limit}"
)

# What each fired rule read, for the transactions stored and alerted in this batch (the
# rows of wb_stage_alert that are alertable): one document per transaction.
_EVIDENCE = """
INSERT INTO alert_evidence (tx_id, ts, evidence)
SELECT e.tx_id, a.ts, jsonb_object_agg(e.rule_id, e.names)
FROM (SELECT tx_id, ts_us, rule_id, jsonb_object_agg(name, value::jsonb) AS names
      FROM wb_stage_evidence GROUP BY tx_id, ts_us, rule_id) e
JOIN wb_stage_alert a ON a.tx_id = e.tx_id AND a.alertable
 AND a.ts = 'epoch'::timestamptz + e.ts_us * interval '1 microsecond'
GROUP BY e.tx_id, a.ts
ON CONFLICT DO NOTHING
"""

# The challenger's scores (revision 0011): a replay or an id repeated in the batch adds none.
_SHADOW_COLUMNS = ("tx_id", "ts", "risk_score", "band", "rule_hits", "rule_set_version")
_SHADOW_INSERT = (
    "INSERT INTO shadow_scores SELECT DISTINCT ON (tx_id) * FROM wb_stage_shadow"
    " ORDER BY tx_id, ts ON CONFLICT DO NOTHING"
)

# The batch's pipeline_stats row and its NOTIFY, in one statement (one round trip) with the
# evidence insert (when there is evidence) and the deletes that empty the stage: the parts of
# one statement share its snapshot, so the evidence still reads the staged rows.
_STATS_AND_NOTIFY = """
stats AS (
    INSERT INTO pipeline_stats (worker, source, batch_created_at, stored, duplicates, dead,
                                alerts_opened, alerts_attached, rule_set_version, min_ts,
                                max_ts, latency_s, partitions, lag, offsets)
    VALUES (%(worker)s, %(source)s, to_timestamp(%(created_at)s), %(stored)s,
            %(duplicates)s, %(dead)s, %(alerts_opened)s, %(alerts_attached)s,
            %(rule_set_version)s, %(min_ts)s, %(max_ts)s,
            extract(epoch FROM clock_timestamp()) - %(created_at)s, %(partitions)s, %(lag)s,
            %(offsets)s::jsonb)
)
SELECT pg_notify(%(channel)s, %(payload)s)
"""
_CLEAR_STAGE = "".join(f"clear_{t} AS (DELETE FROM {t}), " for t in _STAGE_TABLES)
_FINISH = {
    False: "WITH " + _CLEAR_STAGE + _STATS_AND_NOTIFY,
    True: "WITH evidence AS (" + _EVIDENCE + "), " + _CLEAR_STAGE + _STATS_AND_NOTIFY,
}

CASE_SLA_S = 86400.0  # a new case is due this long after it opens (setting ``case_sla``)


@dataclass(frozen=True)
class WriteResult:
    """What one :func:`write_batch` did. ``summary`` is the batch's summary, as sent (bounded)
    in its NOTIFY payload."""

    stored: int
    duplicates: int
    dead: int
    alerts_opened: int
    alerts_attached: int
    summary: notify.BatchSummary = field(
        default_factory=notify.BatchSummary, compare=False, repr=False
    )


def write_batch(
    conn: psycopg.Connection,
    scored: ScoredBatch | PreparedBatch,
    *,
    alert_min_band: bands.Band | str | None = bands.Band.HIGH,
    alert_dedup_s: float = 600.0,
    case_sla_s: float = CASE_SLA_S,
    source: str = "",
    worker: str = "",
) -> WriteResult:
    """Store a scored batch in one transaction and NOTIFY ``workbench_batches``; see module doc.

    One-shot: a fresh :class:`BatchWriter` for this call (keep one per connection to write a
    stream of batches). Options as for :meth:`BatchWriter.write`.
    """
    return BatchWriter(conn).write(
        scored,
        alert_min_band=alert_min_band,
        alert_dedup_s=alert_dedup_s,
        case_sla_s=case_sla_s,
        source=source,
        worker=worker,
    )


class BatchWriter:
    """Writes batches on one connection, remembering what saves queries on the next batch:
    whether the last batch met stored rows (:attr:`conflicted`: the next one takes the staging
    path), whether the session has the staging temp tables (:attr:`staged`) and the partition
    days known to exist (:attr:`partitions`). Not thread-safe: one writer per connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.partitions = partitions.Partitions(conn)
        self.conflicted = False
        self.staged = False
        self.writes = 0  # transactions begun: every _TRUNCATE_EVERY-th truncates the stage

    def write(
        self,
        scored: ScoredBatch | PreparedBatch,
        *,
        alert_min_band: bands.Band | str | None = bands.Band.HIGH,
        alert_dedup_s: float = 600.0,
        case_sla_s: float = CASE_SLA_S,
        source: str = "",
        worker: str = "",
    ) -> WriteResult:
        """Store a scored batch in one transaction and NOTIFY ``workbench_batches``; see the
        module doc.

        Writing the same batch twice stores it once. ``alert_min_band``: lowest band that
        raises an alert (``None``/"none": no alerts). ``alert_dedup_s``: event-time window in
        which a card's qualifying transactions join its open alert. ``case_sla_s``: how long
        after it opens (wall clock) a case this batch opens is due. A :class:`PreparedBatch`
        brings its own ``alert_min_band``, ``source`` and ``worker``. Raises
        :class:`StorageError`.
        """
        if isinstance(scored, PreparedBatch):
            batch = scored
        else:
            batch = PreparedBatch(
                scored, alert_min_band=alert_min_band, source=source, worker=worker
            )
        conn = self.conn
        require_idle(conn, "write a batch")
        if len(batch.frame) == 0 and len(batch.scored.dead) == 0:
            return WriteResult(0, 0, 0, 0, 0)
        dedup, case_sla = timedelta(seconds=alert_dedup_s), timedelta(seconds=case_sla_s)
        for attempt in (1, 2):
            try:
                self.partitions.ensure_days(batch.days)
                self._ensure_staging()
                if batch.direct_ok and not self.conflicted:
                    try:
                        return _write(conn, batch, dedup, case_sla, self._clear(), direct=True)
                    except psycopg.errors.UniqueViolation:
                        self.conflicted = True  # some rows are stored already: stage, skip those
                result = _write(conn, batch, dedup, case_sla, self._clear(), direct=False)
                self.conflicted = bool(result.duplicates)
                return result
            except psycopg.errors.CheckViolation as exc:
                # Known days gone stale (another process applied retention): refresh, retry once.
                self.partitions.forget()
                if attempt == 2 or "no partition" not in str(exc):
                    raise translate(exc, "cannot write batch") from exc
            except psycopg.Error as exc:
                failure = translate(exc, "cannot write batch")
                if not isinstance(failure, DataRefused):
                    # The session may be gone or changed: check its state again next time. A
                    # refused batch only rolled its transaction back; the caller writes its
                    # parts on the same connection.
                    self.staged = False
                    self.partitions.forget()
                raise failure from exc
        raise AssertionError("unreachable")

    def retention(self, days: int, *, now: datetime | None = None) -> list[date]:
        """:meth:`~workbench.storage.partitions.Partitions.retention` on this connection (the
        dropped days are forgotten here too)."""
        return self.partitions.retention(days, now=now)

    def _clear(self) -> bool:
        """Whether this transaction starts with a TRUNCATE of the staging tables."""
        self.writes += 1
        return self.writes % _TRUNCATE_EVERY == 0

    def _ensure_staging(self) -> None:
        if self.staged:
            return
        conn = self.conn
        with conn.transaction():
            exists = conn.execute("SELECT to_regclass('pg_temp.wb_stage_tx')").fetchone()
            if exists is None or exists[0] is None:
                conn.execute(_STAGE_DDL)
        self.staged = True


def _write(
    conn: psycopg.Connection,
    batch: PreparedBatch,
    dedup: timedelta,
    case_sla: timedelta,
    truncate: bool,
    *,
    direct: bool,
):
    scored, frame, dead_csv = batch.scored, batch.frame, batch.dead_csv
    with conn.transaction(), conn.cursor() as cur:
        if truncate:  # the dead tuples of earlier batches' staged rows (see _STAGE_DDL)
            cur.execute(_TRUNCATE)
        if direct:
            # The ids first: on a replay the small COPY fails, not the big one.
            _copy(cur, "transaction_ids", ("tx_id", "ts_us"), *batch.direct_ids)
            _copy(cur, "transactions", DIRECT_COLUMNS, *batch.direct_tx)
            if batch.direct_alert is not None:
                _copy(cur, "wb_stage_alert", ALERT_COLUMNS, *batch.direct_alert)
            row = batch.direct_summary(conn.info.timezone)
        else:
            # The per-row rule_hits aggregate spills to disk at the default 4MB work_mem.
            cur.execute("SET LOCAL work_mem = '64MB'")
            _copy(cur, "wb_stage_tx", STAGE_COLUMNS, batch.stage_tx_csv)
            _copy(cur, "wb_stage_hits", ("pos", "rule_id", "points"), batch.stage_hits_csv)
            params = {
                "bands": list(bands.LABELS),
                "alert_rank": batch.alert_rank or 99,
                "keep_rank": batch.keep_rank,
            }
            row = cur.execute(_INSERT, params).fetchone()
            assert row is not None
        stored, *band_counts = row[: 1 + len(bands.LABELS)]
        mean, p95, min_ts, max_ts, alertable = row[1 + len(bands.LABELS) :]
        opened = attached = 0
        newest_high = sql.SQL(_NEWEST_HIGH).format(
            band=sql.Literal(bands.LABELS[-1]), limit=sql.Literal(notify.MAX_HIGH)
        )
        if alertable:  # one round trip for the alerts and the newest High rows
            opened, attached = alerting.raise_alerts(
                cur, dedup, then=newest_high, case_sla=case_sla
            )
        else:
            cur.execute(newest_high, prepare=True)
        high = [
            dict(zip(("tx_id", "ts", "card_id", "amount", "risk_score", "rules"), r, strict=True))
            for r in cur.fetchall()
        ]
        evidence = bool(alertable) and batch.evidence_csv is not None
        if evidence:  # stored by the last statement
            cols = ("tx_id", "ts_us", "rule_id", "name", "value")
            _copy(cur, "wb_stage_evidence", cols, batch.evidence_csv)
        if batch.shadow_csv is not None:  # never alerting: only stored
            if direct:
                _copy(cur, "shadow_scores", _SHADOW_COLUMNS, batch.shadow_csv)
            else:
                _copy(cur, "wb_stage_shadow", _SHADOW_COLUMNS, batch.shadow_csv)
                cur.execute(_SHADOW_INSERT, prepare=True)
        _copy(cur, "wb_stage_dead", ("source", "worker", "raw", "reason"), dead_csv)
        if dead_csv is not None:
            # A dead letter stored already (a replay) is not stored again: the fingerprint.
            cur.execute(
                "INSERT INTO dead_letters (source, worker, raw, reason)"
                " SELECT source, worker, raw, reason FROM wb_stage_dead"
                " ON CONFLICT (fingerprint) DO NOTHING"
            )
        versions = frame["rule_set_version"] if "rule_set_version" in frame else pd.Series([])
        summary = notify.summarize(
            worker=batch.worker,
            source=batch.source,
            rows=stored,
            duplicates=len(frame) - stored,
            dead=len(scored.dead),
            band_counts=band_counts,
            mean_score=mean,
            p95_score=p95,
            alerts_opened=opened,
            alerts_attached=attached,
            min_ts=min_ts,
            max_ts=max_ts,
            rule_set_version=scored.rule_set_version
            or (str(versions.iloc[-1]) if len(versions) else None),
            created_at=scored.created_at,
            latency_ms=(time.time() - scored.created_at) * 1000.0,
            eval_errors=scored.eval_errors,
            rule_hits=batch.rule_hit_counts,
            high=high,
            partitions=batch.partitions,
            lag=batch.lag,
            offsets=scored.position if isinstance(scored.position, dict) else None,
        )
        cur.execute(
            _FINISH[evidence],
            {**summary.stats_row(), "channel": notify.CHANNEL, "payload": summary.payload()},
        )
    return WriteResult(stored, len(frame) - stored, len(scored.dead), opened, attached, summary)


def _copy(
    cur: psycopg.Cursor,
    table: str,
    columns: tuple[str, ...],
    data: bytes | pa.Buffer | None,
    fmt: str = "csv",
) -> None:
    # Raw psycopg COPY (SQLAlchemy has no COPY): the payload is built whole, vectorized, and
    # handed to the server as it is, with no per-row adaptation on the way.
    if data is None:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL({"csv": "csv", "binary": "binary"}[fmt]),
    )
    with cur.copy(statement) as copy:
        copy.write(memoryview(data))
