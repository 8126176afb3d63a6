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
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cached_property

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from workbench import bands
from workbench.errors import DataRefused, StorageError
from workbench.schema import COLUMNS, NAMES
from workbench.scoring.result import ScoredBatch
from workbench.storage import alerting, binary_copy, notify, partitions
from workbench.storage.connection import require_idle, translate
from workbench.storage.tables import names, postgres_type, transactions

_SCORE_COLUMNS = ("risk_score", "band", "rule_set_version")
# Staged ts is epoch microseconds: exact, and far cheaper to parse than timestamp text.
_STAGE_COLUMNS = ("pos", *(("ts_us" if n == "ts" else n) for n in NAMES), *_SCORE_COLUMNS)

# The staged row has the stored types (taken from the table declaration, so money is staged
# as numeric(14,2) too: batches hold float64 values on the cent grid, read back exactly).
_STAGE_TYPES = {
    ("ts_us" if n == "ts" else n): ("bigint" if n == "ts" else postgres_type(transactions.c[n]))
    for n in (*NAMES, *_SCORE_COLUMNS)
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
    " band text, rule_hits jsonb, rule_set_version text);"
    + alerting.STAGE_DDL
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

# The direct path's COPY columns (ts as text): every stored column but the defaulted one.
_DIRECT_COLUMNS = tuple(n for n in names(transactions) if n != "stored_at")
_ALERT_COLUMNS = (
    "tx_id", "ts", "card_id", "amount", "currency", "risk_score", "band", "rule_hits",
    "rule_set_version", "alertable",
)  # fmt: skip
# The wire kind of each direct column, and of the alert stage's (its DDL: alerting.STAGE_DDL).
_DIRECT_KINDS = {n: binary_copy.kind_of(transactions.c[n].type) for n in _DIRECT_COLUMNS}
_ALERT_KINDS = {**{n: _DIRECT_KINDS[n] for n in _ALERT_COLUMNS[:-1]}, "alertable": "bool"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAT = np.iinfo(np.int64).min
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


class PreparedBatch:
    """A scored batch in the forms :func:`write_batch` sends, each built (vectorized) on first
    use. :meth:`build` makes the usual path's COPY payloads up front, so a pipeline can prepare
    the next batch while the previous one is being written (off the write's critical path).
    Raises :class:`ConfigError` for an unknown ``alert_min_band``."""

    def __init__(
        self,
        scored: ScoredBatch,
        *,
        alert_min_band: bands.Band | str | None = bands.Band.HIGH,
        source: str = "",
        worker: str = "",
        binary: bool = True,
    ) -> None:
        self.scored = scored
        # False: the direct path's COPYs as CSV, as before binary COPY (kept for comparison)
        self.binary = binary
        self.frame = scored.frame
        self.alert_min_band = alert_min_band
        self.alert_rank = bands.alert_rank(alert_min_band)
        self.keep_rank = min(self.alert_rank or len(bands.LABELS), len(bands.LABELS))
        self.source, self.worker = source, worker
        # A partitioned source's partitions owned and messages behind (health only)
        self.partitions: list[int] | None = None
        self.lag: int | None = None
        if len(scored.hits):
            _check_hit_rows(scored.hits, len(self.frame))

    def build(self) -> PreparedBatch:
        """Build the direct path's payloads now (CSV of the rows, of the alert candidates,
        of the dead letters); returns self."""
        if self.direct_ok:
            _ = self.direct_tx, self.direct_ids, self.direct_alert, self._summary
        _ = self.days, self.dead_csv, self.rule_hit_counts, self.evidence_csv, self.shadow_csv
        return self

    def like(self, scored: ScoredBatch) -> PreparedBatch:
        """Another batch prepared with the same alert band, source and worker."""
        return PreparedBatch(
            scored,
            alert_min_band=self.alert_min_band,
            source=self.source,
            worker=self.worker,
            binary=self.binary,
        )

    @cached_property
    def days(self) -> list:
        return _days(self.micros)

    @cached_property
    def dead_csv(self) -> pa.Buffer | None:
        dead = self.scored.dead
        return _csv(_dead_table(dead, self.source, self.worker)) if len(dead) else None

    @cached_property
    def evidence_csv(self) -> pa.Buffer | None:
        """The evidence long frame with each row's tx_id and ts (epoch us), or None."""
        found = self.scored.evidence
        if found is None or not found.num_rows or not len(self.frame):
            return None
        at = found.column("row").to_numpy()
        table = pa.table(
            {
                "tx_id": _arrow(self.frame["tx_id"]).take(pa.array(at)),
                "ts_us": pa.array(self.micros[at]),
                "rule_id": found.column("rule_id"),
                "name": found.column("name"),
                "value": found.column("value"),
            }
        )
        return _csv(table)

    @cached_property
    def shadow_csv(self) -> pa.Buffer | None:
        """The challenger's scores of the rows (``shadow_scores`` columns), or None."""
        done = self.scored.shadow
        if done is None or not len(self.frame):
            return None
        n = len(self.frame)
        hits = _rule_hits_json(done.hits, n)
        if hits is None:  # an id with a control character: the stored text, row by row
            hits = pa.array(_rule_hits_rows(done.hits, n))
        # the tx_id text the rows' own payload made already, when it has one
        tx_id = self.tx_ids
        table = pa.table(
            {
                "tx_id": tx_id,
                "ts": self.ts_text,
                "risk_score": _arrow(done.scores["risk_score"]),
                "band": _arrow(done.scores["band"]),
                "rule_hits": hits,
                "rule_set_version": _arrow(done.scores["rule_set_version"]),
            }
        )
        return _csv(table)

    # -- staging path -------------------------------------------------------------------------
    @cached_property
    def stage_tx_csv(self) -> pa.Buffer | None:
        return _csv(_tx_table(self.frame)) if len(self.frame) else None

    @cached_property
    def stage_hits_csv(self) -> pa.Buffer | None:
        return _csv(_hits_table(self.scored.hits)) if len(self.scored.hits) else None

    # -- direct path --------------------------------------------------------------------------
    @cached_property
    def micros(self) -> np.ndarray:
        return _epoch_us(self.frame["ts"])

    @cached_property
    def rule_hits(self) -> pa.Array | None:
        """``rule_hits`` JSON text per row; None when some hit cannot be written as JSON."""
        return _rule_hits_json(self.scored.hits, len(self.frame))

    @property
    def direct_ok(self) -> bool:
        return len(self.frame) > 0 and self.rule_hits is not None

    @cached_property
    def ranks(self) -> np.ndarray:
        """1-based rank of each row's band in bands.LABELS (0: no band), like ``array_position``."""
        band = _arrow(self.frame["band"])
        rank = pc.index_in(band, value_set=pa.array(bands.LABELS)).to_numpy(zero_copy_only=False)
        return np.nan_to_num(rank, nan=-1).astype(np.int64) + 1

    @cached_property
    def ts_text(self) -> pa.Array:
        # Naive UTC text plus "Z": pyarrow formats a zoned timestamp ~40x slower.
        naive = pa.array(self.micros, pa.timestamp("us")).cast(pa.string())
        return pc.binary_join_element_wise(naive, "Z", "")

    @cached_property
    def tx_ids(self) -> pa.Array:
        return _arrow(self.frame["tx_id"])

    def _column(self, name: str) -> pa.Array:
        if name == "tx_id":
            return self.tx_ids
        if name == "rule_hits":
            return self.rule_hits
        return _arrow(self.frame[name])

    @cached_property
    def direct_table(self) -> pa.Table:
        arrays = [self.ts_text if n == "ts" else self._column(n) for n in _DIRECT_COLUMNS]
        return pa.Table.from_arrays(arrays, names=list(_DIRECT_COLUMNS))

    @cached_property
    def direct_fields(self) -> dict[str, binary_copy.Field] | None:
        """The direct columns as binary COPY fields; None when they cannot be sent exactly
        that way (an amount off the cent grid: its text, rounded by the server, is sent)."""
        if not self.binary:
            return None
        fields: dict[str, binary_copy.Field] = {}
        for name, kind in _DIRECT_KINDS.items():
            if kind in ("text", "jsonb"):
                fields[name] = binary_copy.Field(kind, self._column(name))
                continue
            series = self.frame[name]
            if kind == "timestamptz":
                fields[name] = binary_copy.Field(kind, self.micros, self.micros != _NAT)
            elif kind == "numeric":
                cents = binary_copy.cents_exact(_floats(series))
                if cents is None:
                    return None
                fields[name] = binary_copy.Field(kind, cents, series.notna().to_numpy())
            elif kind == "bool":
                flags = series.astype("boolean")
                values = flags.to_numpy(dtype=bool, na_value=False)
                fields[name] = binary_copy.Field(kind, values, flags.notna().to_numpy())
            else:  # float8: NaN is NULL, as in the CSV
                fields[name] = binary_copy.Field(kind, _floats(series))
        return fields

    @cached_property
    def direct_tx(self) -> tuple[bytes | pa.Buffer, str]:
        """The rows' COPY payload and its format (``binary`` or ``csv``)."""
        fields = self.direct_fields
        if fields is None:
            return _csv(self.direct_table), "csv"
        return binary_copy.encode(list(fields.values()), len(self.frame)), "binary"

    @cached_property
    def direct_ids(self) -> tuple[bytes | pa.Buffer, str]:
        if not self.binary:
            return _csv(pa.table({"tx_id": self.tx_ids, "ts_us": pa.array(self.micros)})), "csv"
        fields = [binary_copy.Field("text", self.tx_ids), binary_copy.Field("int8", self.micros)]
        return binary_copy.encode(fields, len(self.frame)), "binary"

    @cached_property
    def direct_alert(self) -> tuple[bytes | pa.Buffer, str] | None:
        # The stored rows (all of them, on this path) the alert step and the NOTIFY look at.
        kept = self.ranks >= self.keep_rank
        if not kept.any():
            return None
        alertable = self.ranks[kept] >= (self.alert_rank or 99)
        fields = self.direct_fields
        if fields is None:
            table = self.direct_table.select(list(_ALERT_COLUMNS[:-1])).filter(pa.array(kept))
            return _csv(table.append_column("alertable", pa.array(alertable))), "csv"
        rows = np.flatnonzero(kept)
        parts = [fields[n].take(rows) for n in _ALERT_COLUMNS[:-1]]
        parts.append(binary_copy.Field("bool", alertable))
        return binary_copy.encode(parts, len(rows)), "binary"

    @cached_property
    def _summary(self) -> tuple:
        risk = self.frame["risk_score"].astype("float64").dropna().to_numpy()
        counts = [int(np.count_nonzero(self.ranks == r)) for r in range(1, len(bands.LABELS) + 1)]
        mean = float(risk.mean()) if len(risk) else None
        p95 = float(np.percentile(risk, 95)) if len(risk) else None  # = percentile_cont
        alertable = int(np.count_nonzero(self.ranks >= (self.alert_rank or 99)))
        return counts, mean, p95, int(self.micros.min()), int(self.micros.max()), alertable

    def direct_summary(self, tz: tzinfo) -> tuple:
        """What the staging path's INSERT returns, when every row is stored."""
        counts, mean, p95, first, last, alertable = self._summary
        first_ts, last_ts = _datetime(first, tz), _datetime(last, tz)
        return (len(self.frame), *counts, mean, p95, first_ts, last_ts, alertable)

    @cached_property
    def rule_hit_counts(self) -> dict[str, int]:
        """Hits per rule id in the batch (for the NOTIFY payload)."""
        hits = self.scored.hits
        if not len(hits):
            return {}
        counts = pc.value_counts(_arrow(hits["rule_id"]))
        return dict(
            zip(
                counts.field("values").to_pylist(),
                counts.field("counts").to_pylist(),
                strict=True,
            )
        )


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
            _copy(cur, "transactions", _DIRECT_COLUMNS, *batch.direct_tx)
            if batch.direct_alert is not None:
                _copy(cur, "wb_stage_alert", _ALERT_COLUMNS, *batch.direct_alert)
            row = batch.direct_summary(conn.info.timezone)
        else:
            # The per-row rule_hits aggregate spills to disk at the default 4MB work_mem.
            cur.execute("SET LOCAL work_mem = '64MB'")
            _copy(cur, "wb_stage_tx", _STAGE_COLUMNS, batch.stage_tx_csv)
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


def _check_hit_rows(hits: pd.DataFrame, n_rows: int) -> None:
    rows = hits["row"].to_numpy(dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise StorageError(f"hits refer to row {int(rows.max())}, the batch has {n_rows} rows")


def _hits_table(hits: pd.DataFrame) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(hits["row"].to_numpy(dtype=np.int32)),
            _arrow(hits["rule_id"]),
            _arrow(hits["points"].astype("float64")),
        ],
        names=["pos", "rule_id", "points"],
    )


def _rule_hits_json(hits: pd.DataFrame, n_rows: int) -> pa.Array | None:
    """Per row, the JSON object {rule_id: points} of its hits ("{}" without any), as
    ``jsonb_object_agg`` would build it; None when a rule id holds a control character or
    points are not finite (not valid JSON: the staging path handles those)."""
    rows = hits["row"].to_numpy(dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    points = hits["points"].to_numpy(dtype=np.float64)[order]
    keys = _arrow(hits["rule_id"]).take(pa.array(order)).cast(pa.string())
    if (
        not np.isfinite(points).all()
        or pc.any(pc.match_substring_regex(keys, r"[\x00-\x1f]")).as_py()
    ):
        return None
    keys = pc.replace_substring(pc.replace_substring(keys, "\\", "\\\\"), '"', '\\"')
    # Shortest round-trip text: "30" for 30.0, as PostgreSQL writes a float8 into jsonb.
    entries = pc.binary_join_element_wise('"', keys, '":', pa.array(points).cast(pa.string()), "")
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
    per_row = pa.ListArray.from_arrays(pa.array(offsets), entries)
    return pc.binary_join_element_wise("{", pc.binary_join(per_row, ","), "}", "")


def _rule_hits_rows(hits: pd.DataFrame, n_rows: int) -> list[str]:
    """``rule_hits`` JSON text per row, one object at a time: only for what
    :func:`_rule_hits_json` refuses (rule ids are checked when loaded, so in practice never)."""
    import json

    rows: list[dict] = [{} for _ in range(n_rows)]
    for row, rule, pts in zip(hits["row"], hits["rule_id"], hits["points"], strict=True):
        rows[int(row)][str(rule)] = float(pts) if np.isfinite(pts) else None
    return [json.dumps(r) for r in rows]


def _datetime(micros: int, tz: tzinfo) -> datetime:
    """Epoch microseconds as the aware datetime psycopg would return in zone ``tz``."""
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(tz)


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
        # PostgreSQL text cannot hold NUL: one bad byte must not sink the whole batch. One
        # scan of the character data (a NUL there outside the array's slice only costs the
        # replace) is ~10x cheaper than matching string by string.
        data = array.buffers()[2]
        if data is not None and not np.frombuffer(data, dtype=np.uint8).all():
            array = pc.replace_substring(array, "\x00", "\ufffd")
    elif pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


def _floats(series: pd.Series) -> np.ndarray:
    return np.asarray(pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan))


def _epoch_us(series: pd.Series) -> np.ndarray:
    # A zoned datetime array holds UTC instants: its integers are the epoch (naive: as UTC).
    return np.asarray(series.array.as_unit("us").asi8, dtype=np.int64)


def _days(micros: np.ndarray) -> list:
    if len(micros) == 0:
        return []
    day_numbers = np.unique(micros // 86_400_000_000)
    # One day ahead of the newest: the partition exists before the stream crosses midnight.
    day_numbers = np.union1d(day_numbers, day_numbers[-1:] + 1)
    return [(_EPOCH + timedelta(days=int(d))).date() for d in day_numbers]
