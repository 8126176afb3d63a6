"""The read API (and the analysts' few writes): pandas DataFrames for dashboards and notebooks.

Small answers (a page of rows) are fetched through the cursor; large ranges
(:func:`load_transactions`, :func:`load_hits`) stream ``COPY (SELECT ...) TO STDOUT`` into
pyarrow's CSV reader, which is many times faster than building rows in Python. Frames use the
batch schema's dtypes: ``str`` text, ``datetime64[ns, UTC]`` times, ``float64`` numbers,
nullable ``boolean`` labels. ``rule_hits`` is a dict per row in page-sized answers and JSON
text in bulk loads (use :func:`load_hits` for a long frame of hits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.types.json import Jsonb

from workbench import bands
from workbench.durations import parse_duration
from workbench.errors import StorageError
from workbench.schema import COLUMNS, NAMES
from workbench.storage import tables
from workbench.storage.connection import reading, storage_errors

DISPOSITIONS = ("confirmed_fraud", "false_positive", "valuable")
RULE_SET_STATUSES = ("accepted", "rejected")
MAX_BUCKETS = 100_000
_ORIGIN = "2000-01-01 00:00:00+00"  # buckets align to UTC midnight

_TX_COLUMNS = tables.names(tables.transactions)
_TX_SELECT = sql.SQL(", ").join(sql.Identifier(c) for c in _TX_COLUMNS)
_ALERT_COLUMNS = (
    "id",
    "status",
    "disposition",
    "assignee",
    "notes",
    "tx_id",
    "ts",
    "card_id",
    "risk_score",
    "band",
    "hit_count",
    "last_ts",
    "rules",
    "rule_set_version",
    "created_at",
    "updated_at",
    "closed_at",
)

# PostgreSQL type oid -> pandas dtype of page-sized answers.
_DTYPES = {
    25: "str",
    1043: "str",
    1184: "datetime64[ns, UTC]",
    701: "float64",
    700: "float64",
    1700: "float64",
    16: "boolean",
    20: "int64",
    23: "int64",
    21: "int64",
}


def recent_transactions(
    conn: psycopg.Connection, limit: int = 100, since: datetime | None = None
) -> pd.DataFrame:
    """The newest ``limit`` stored transactions (event time), newest first; only those with
    ``ts > since`` when given."""
    where = sql.SQL("WHERE ts > {}").format(sql.Literal(since)) if since else sql.SQL("")
    query = sql.SQL("SELECT {} FROM transactions {} ORDER BY ts DESC, tx_id DESC LIMIT {}").format(
        _TX_SELECT, where, sql.Literal(int(limit))
    )
    return _fetch(conn, query, (), "cannot read recent transactions")


def card_history(conn: psycopg.Connection, card_id: str, limit: int = 100) -> pd.DataFrame:
    """A card's newest ``limit`` transactions, newest first."""
    query = sql.SQL(
        "SELECT {} FROM transactions WHERE card_id = %s ORDER BY ts DESC, tx_id DESC LIMIT %s"
    ).format(_TX_SELECT)
    return _fetch(conn, query, (card_id, int(limit)), "cannot read card history")


def bucketed(
    conn: psycopg.Connection, start: datetime, end: datetime, bucket: str | float | timedelta = "1m"
) -> pd.DataFrame:
    """Per time bucket in ``[start, end)`` (event time): ``bucket``, ``transactions``, one
    count per band (``low``, ``medium``, ``high``), ``mean_score``, ``p95_score``,
    ``amount``, ``fraud`` (labelled fraud) and ``alerts`` (alerts opened, by event time).
    Every bucket is present; empty ones have zero counts and null scores.

    ``bucket``: ``"1m"``-style duration, seconds, a timedelta, or PostgreSQL interval text.
    """
    seconds = _bucket_seconds(conn, bucket)
    if (end - start).total_seconds() / seconds > MAX_BUCKETS:
        raise StorageError(
            f"too many buckets: {(end - start)} in buckets of {seconds:g}s (at most {MAX_BUCKETS})"
        )
    band_counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE band = {}) AS {}").format(
            sql.Literal(b), sql.Identifier(b.lower())
        )
        for b in bands.LABELS
    )
    band_out = sql.SQL(", ").join(
        sql.SQL("coalesce(t.{0}, 0) AS {0}").format(sql.Identifier(b.lower())) for b in bands.LABELS
    )
    query = sql.SQL("""
    WITH t AS (
        SELECT date_bin(%(step)s, ts, %(origin)s) AS bucket, count(*) AS n, {band_counts},
               avg(risk_score) AS mean_score,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY risk_score) AS p95_score,
               sum(amount) AS amount, count(*) FILTER (WHERE is_fraud) AS fraud
        FROM transactions WHERE ts >= %(start)s AND ts < %(end)s GROUP BY 1
    ), a AS (
        SELECT date_bin(%(step)s, ts, %(origin)s) AS bucket, count(*) AS alerts
        FROM alerts WHERE ts >= %(start)s AND ts < %(end)s GROUP BY 1
    ), g AS (
        SELECT generate_series(date_bin(%(step)s, %(start)s, %(origin)s),
                               %(end)s - interval '1 microsecond', %(step)s) AS bucket
    )
    SELECT g.bucket, coalesce(t.n, 0) AS transactions, {band_out},
           t.mean_score, t.p95_score, coalesce(t.amount, 0) AS amount,
           coalesce(t.fraud, 0) AS fraud, coalesce(a.alerts, 0) AS alerts
    FROM g LEFT JOIN t USING (bucket) LEFT JOIN a USING (bucket)
    ORDER BY g.bucket
    """).format(band_counts=band_counts, band_out=band_out)
    params = {"step": timedelta(seconds=seconds), "origin": _ORIGIN, "start": start, "end": end}
    return _fetch(conn, query, params, "cannot read bucketed statistics")


def alerts(
    conn: psycopg.Connection,
    status: str | None = None,
    limit: int = 100,
    *,
    alert_id: int | None = None,
) -> pd.DataFrame:
    """Alerts, newest first; only ``status`` ('open' or 'closed') or the one ``alert_id``
    when given."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in _ALERT_COLUMNS)
    conditions = []
    if status:
        conditions.append(sql.SQL("status = {}").format(sql.Literal(status)))
    if alert_id is not None:
        conditions.append(sql.SQL("id = {}").format(sql.Literal(int(alert_id))))
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    query = sql.SQL("SELECT {} FROM alerts {} ORDER BY id DESC LIMIT %s").format(cols, where)
    return _fetch(conn, query, (int(limit),), "cannot read alerts")


def alert_hits(conn: psycopg.Connection, alert_id: int) -> pd.DataFrame:
    """The transactions attached to one alert (the opening one included), oldest first."""
    query = (
        "SELECT alert_id, tx_id, ts, risk_score, band, rules, attached_at FROM alert_hits"
        " WHERE alert_id = %s ORDER BY ts, tx_id"
    )
    return _fetch(conn, query, (int(alert_id),), "cannot read alert hits")


def set_disposition(
    conn: psycopg.Connection, alert_id: int, disposition: str, user: str, notes: str | None = None
) -> None:
    """Close an alert with the analyst's verdict (confirmed_fraud, false_positive, valuable)."""
    if disposition not in DISPOSITIONS:
        raise StorageError(
            f"unknown disposition {disposition!r}: use one of " + ", ".join(DISPOSITIONS)
        )
    with storage_errors(f"cannot close alert {alert_id}"), conn.transaction():
        row = conn.execute(
            "UPDATE alerts SET status = 'closed', disposition = %s, assignee = %s,"
            " notes = coalesce(%s, notes), closed_at = now(), updated_at = now()"
            " WHERE id = %s RETURNING id",
            (disposition, user, notes, int(alert_id)),
        ).fetchone()
    if row is None:
        raise StorageError(f"cannot close alert {alert_id}: no such alert")


def record_rule_set(
    conn: psycopg.Connection,
    version: str,
    texts: Mapping[str, str],
    author: str | None,
    status: str,
    error: str | None = None,
) -> int:
    """Record one rule-set load (``texts``: file name -> YAML text); its id."""
    if status not in RULE_SET_STATUSES:
        raise StorageError(f"unknown rule-set status {status!r}: use accepted or rejected")
    with storage_errors("cannot record the rule set"), conn.transaction():
        row = conn.execute(
            "INSERT INTO rule_sets (version, files, author, status, error)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (version, Jsonb(dict(texts)), author, status, error),
        ).fetchone()
    assert row is not None
    return int(row[0])


def rule_set_history(conn: psycopg.Connection, limit: int = 50) -> pd.DataFrame:
    """Rule-set loads, newest first: id, version, created_at, author, status, error, files."""
    query = (
        "SELECT id, version, created_at, author, status, error, files FROM rule_sets"
        " ORDER BY id DESC LIMIT %s"
    )
    return _fetch(conn, query, (int(limit),), "cannot read rule-set history")


def dead_letters(conn: psycopg.Connection, limit: int = 100) -> pd.DataFrame:
    """The newest dead letters: id, received_at, source, worker, raw, reason."""
    query = (
        "SELECT id, received_at, source, worker, raw, reason FROM dead_letters"
        " ORDER BY id DESC LIMIT %s"
    )
    return _fetch(conn, query, (int(limit),), "cannot read dead letters")


def counts(conn: psycopg.Connection, *, estimate: bool = False) -> dict[str, int]:
    """Row counts: stored, dead, alerts_open, alerts_closed, rule_sets, batches, partitions.

    ``estimate=True`` takes ``stored`` from the planner statistics instead of counting, for
    tables too large to count on every refresh.
    """
    stored = (
        (
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'transactions'::regclass"
        )
        if estimate
        else "SELECT count(*) FROM transactions"
    )
    query = f"""
    SELECT ({stored}),
           (SELECT count(*) FROM dead_letters),
           (SELECT count(*) FROM alerts WHERE status = 'open'),
           (SELECT count(*) FROM alerts WHERE status = 'closed'),
           (SELECT count(*) FROM rule_sets),
           (SELECT count(*) FROM pipeline_stats),
           (SELECT count(*) FROM pg_inherits WHERE inhparent = 'transactions'::regclass)
    """
    with storage_errors("cannot count rows"), reading(conn):
        row = conn.execute(query).fetchone()
    keys = ("stored", "dead", "alerts_open", "alerts_closed", "rule_sets", "batches", "partitions")
    return dict(zip(keys, (int(v) for v in row), strict=True))  # type: ignore[union-attr]


def open_alert_count(conn: psycopg.Connection) -> int:
    """How many alerts are open (served by the partial index on open alerts)."""
    with storage_errors("cannot count open alerts"), reading(conn):
        row = conn.execute("SELECT count(*) FROM alerts WHERE status = 'open'").fetchone()
    return int(row[0])  # type: ignore[index]


def last_rule_set(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The newest rule-set load without its files: id, version, created_at, author, status,
    error; None when no rule set was ever loaded."""
    query = (
        "SELECT id, version, created_at, author, status, error FROM rule_sets"
        " ORDER BY id DESC LIMIT 1"
    )
    with storage_errors("cannot read the last rule-set load"), reading(conn):
        cur = conn.execute(query)
        row = cur.fetchone()
        names = [d.name for d in cur.description or ()]
    return None if row is None else dict(zip(names, row, strict=True))


def transaction(conn: psycopg.Connection, tx_id: str, ts: datetime) -> pd.DataFrame:
    """The stored transaction ``(tx_id, ts)`` as a one-row frame (empty when absent)."""
    query = sql.SQL("SELECT {} FROM transactions WHERE ts = %s AND tx_id = %s").format(_TX_SELECT)
    return _fetch(conn, query, (ts, tx_id), "cannot read transaction")


def rule_set_files(conn: psycopg.Connection, version: str) -> dict[str, str] | None:
    """The YAML files (name -> text) of the newest accepted load of rule-set ``version``."""
    query = (
        "SELECT files FROM rule_sets WHERE version = %s AND status = 'accepted'"
        " ORDER BY id DESC LIMIT 1"
    )
    with storage_errors("cannot read rule-set files"), reading(conn):
        row = conn.execute(query, (version,)).fetchone()
    return None if row is None else {str(k): str(v) for k, v in row[0].items()}


RULES_CHANNEL = "workbench_rules"  # NOTIFY payload: the version of a newly accepted rule set
_RULE_SETS_LOCK = 0x7275_6C65  # advisory lock that serialises rule-set publication ("rule")


def publish_rule_set(
    conn: psycopg.Connection,
    version: str,
    texts: Mapping[str, str],
    author: str | None,
    status: str,
    error: str | None = None,
    *,
    still_current: Callable[[], bool] | None = None,
) -> int | None:
    """Record a rule-set attempt once, and announce an accepted one; its id, or None.

    Under an advisory lock (one publisher at a time, across processes): nothing is written
    when the newest row already says the same (same ``version`` and ``status``), or when
    ``still_current()`` (called while holding the lock) says the candidate is stale. An
    accepted row is announced with ``NOTIFY workbench_rules, version`` in the same
    transaction, so listeners see it only once it is committed.
    """
    if status not in RULE_SET_STATUSES:
        raise StorageError(f"unknown rule-set status {status!r}: use accepted or rejected")
    with storage_errors("cannot publish the rule set"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RULE_SETS_LOCK,))
        newest = conn.execute(
            "SELECT version, status FROM rule_sets ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if newest is not None and tuple(newest) == (version, status):
            return None
        if still_current is not None and not still_current():
            return None
        row = conn.execute(
            "INSERT INTO rule_sets (version, files, author, status, error)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (version, Jsonb(dict(texts)), author, status, error),
        ).fetchone()
        if status == "accepted":
            conn.execute("SELECT pg_notify(%s, %s)", (RULES_CHANNEL, version))
    assert row is not None
    return int(row[0])


def active_rule_set(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The rule set in effect — the newest accepted row: id, version, created_at, author,
    files (name -> YAML text); None when none was ever accepted."""
    query = (
        "SELECT id, version, created_at, author, files FROM rule_sets"
        " WHERE status = 'accepted' ORDER BY id DESC LIMIT 1"
    )
    with storage_errors("cannot read the active rule set"), reading(conn):
        row = conn.execute(query).fetchone()
    if row is None:
        return None
    rid, version, created_at, author, files = row
    return {
        "id": int(rid),
        "version": version,
        "created_at": created_at,
        "author": author,
        "files": {str(k): str(v) for k, v in files.items()},
    }


def rule_set_accepted_before(conn: psycopg.Connection, version: str) -> bool:
    """Whether rule-set ``version`` was ever accepted."""
    query = "SELECT EXISTS (SELECT 1 FROM rule_sets WHERE version = %s AND status = 'accepted')"
    with storage_errors("cannot read rule-set history"), reading(conn):
        row = conn.execute(query, (version,)).fetchone()
    return bool(row and row[0])


def recent_batch(conn: psycopg.Connection, limit: int = 1000) -> pd.DataFrame:
    """The newest ``limit`` stored transactions as a typed batch, oldest first, via COPY:
    the batch schema's columns and ``band`` (to replay them through new rules)."""
    names = (*NAMES, "band")
    select = sql.SQL(", ").join(
        sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint").format(sql.Identifier(c))
        if c == "ts"
        else sql.Identifier(c)
        for c in names
    )
    query = sql.SQL(
        "SELECT {} FROM (SELECT * FROM transactions ORDER BY ts DESC, tx_id DESC LIMIT {}) t"
        " ORDER BY t.ts, t.tx_id"
    ).format(select, sql.Literal(int(limit)))
    kinds = {c.name: c.kind for c in COLUMNS} | {"band": "str"}
    return _copy_out(conn, query, kinds, "cannot read recent transactions")


def time_bounds(conn: psycopg.Connection) -> tuple[datetime, datetime] | None:
    """Event times of the oldest and newest stored transaction; None when there are none."""
    with storage_errors("cannot read the stored time range"), reading(conn):
        row = conn.execute("SELECT min(ts), max(ts) FROM transactions").fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])


def pipeline_totals(conn: psycopg.Connection) -> dict[str, Any]:
    """Totals over every committed batch (from ``pipeline_stats``): ``stored``, ``dead``,
    ``alerts_opened``, ``batches`` and ``last_commit`` (None before the first batch)."""
    query = (
        "SELECT coalesce(sum(stored), 0), coalesce(sum(dead), 0),"
        " coalesce(sum(alerts_opened), 0), count(*), max(committed_at) FROM pipeline_stats"
    )
    with storage_errors("cannot read pipeline totals"), reading(conn):
        row = conn.execute(query).fetchone()
    stored, dead, opened, batches, last = row  # type: ignore[misc]
    return {
        "stored": int(stored),
        "dead": int(dead),
        "alerts_opened": int(opened),
        "batches": int(batches),
        "last_commit": last,
    }


def stream_position(
    conn: psycopg.Connection, source: str, tx_prefix: str, *, batches: int = 50
) -> tuple[int, datetime] | None:
    """Where a numbered stream stopped: ``(last number + 1, newest ts)`` of the stored
    transactions whose ``tx_id`` is ``tx_prefix`` followed by a number, or None.

    Only the time spans of the ``batches`` last committed batches of ``source`` (from
    ``pipeline_stats``, committed with their rows) are searched, so the BRIN index on ``ts``
    keeps this quick on any history.
    """
    query = """
        WITH last AS (
            SELECT min_ts, max_ts FROM pipeline_stats
            WHERE source = %(source)s AND min_ts IS NOT NULL
            ORDER BY id DESC LIMIT %(batches)s
        ), spans AS (SELECT min(min_ts) AS lo, max(max_ts) AS hi FROM last)
        SELECT max(substr(t.tx_id, %(start)s)::bigint), max(t.ts)
        FROM transactions t, spans
        WHERE t.ts BETWEEN spans.lo AND spans.hi AND t.tx_id LIKE %(like)s
          AND substr(t.tx_id, %(start)s) ~ '^[0-9]{1,18}$'
    """
    like = tx_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    params = {"source": source, "batches": batches, "start": len(tx_prefix) + 1, "like": like}
    with storage_errors("cannot read the stored stream position"), reading(conn):
        row = conn.execute(query, params).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]) + 1, row[1]


def load_transactions(conn: psycopg.Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Every stored transaction with ``start <= ts < end``, oldest first, via COPY.

    Columns: the batch schema, then ``risk_score``, ``band``, ``rule_hits`` (JSON text),
    ``rule_set_version``, ``stored_at``.
    """
    select = sql.SQL(", ").join(
        sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint").format(sql.Identifier(c))
        if c in ("ts", "stored_at")
        else sql.Identifier(c)
        for c in _TX_COLUMNS
    )
    query = sql.SQL(
        "SELECT {} FROM transactions WHERE ts >= {} AND ts < {} ORDER BY ts, tx_id"
    ).format(select, sql.Literal(start), sql.Literal(end))
    kinds = {c.name: c.kind for c in COLUMNS} | {
        "risk_score": "float",
        "band": "str",
        "rule_hits": "str",
        "rule_set_version": "str",
        "stored_at": "timestamp",
    }
    return _copy_out(conn, query, kinds, "cannot load transactions")


def load_hits(conn: psycopg.Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Long frame of rule hits (tx_id, ts, rule_id, points) of transactions in [start, end)."""
    query = sql.SQL(
        "SELECT t.tx_id, (extract(epoch FROM t.ts) * 1000000)::bigint, e.key,"
        " e.value::double precision FROM transactions t, jsonb_each(t.rule_hits) e"
        " WHERE t.ts >= {} AND t.ts < {} ORDER BY t.ts, t.tx_id, e.key"
    ).format(sql.Literal(start), sql.Literal(end))
    kinds = {"tx_id": "str", "ts": "timestamp", "rule_id": "str", "points": "float"}
    return _copy_out(conn, query, kinds, "cannot load rule hits")


def _fetch(conn: psycopg.Connection, query: Any, params: Any, action: str) -> pd.DataFrame:
    with storage_errors(action), reading(conn), conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
        desc = cur.description or []
    names = [d.name for d in desc]
    frame = (
        pd.DataFrame(rows, columns=names)
        if rows
        else pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    )
    for d in desc:
        dtype = _DTYPES.get(d.type_code)
        if dtype is None:
            continue
        col = frame[d.name]
        if dtype.startswith("datetime"):
            frame[d.name] = pd.to_datetime(col, utc=True).astype(dtype)
        elif dtype == "str":
            frame[d.name] = (
                col.astype("str").where(col.notna(), None) if len(col) else col.astype("str")
            )
        else:
            frame[d.name] = col.astype(dtype)
    return frame


def _copy_out(
    conn: psycopg.Connection, query: sql.Composable, kinds: Mapping[str, str], action: str
) -> pd.DataFrame:
    data = bytearray()
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with storage_errors(action), reading(conn), conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in copy:
            data += chunk
    arrow_types = {
        "str": pa.string(),
        "timestamp": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
    }
    names = list(kinds)
    types = {n: arrow_types[k] for n, k in kinds.items()}
    if data:
        table = pacsv.read_csv(
            pa.py_buffer(bytes(data)),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            # PostgreSQL writes NULL bare and '' quoted; nothing else means null.
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
    else:
        table = pa.table({n: pa.array([], t) for n, t in types.items()})
    out: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        col = table.column(name)
        if kind == "timestamp":
            out[name] = pd.Series(
                pd.to_datetime(col.to_numpy(zero_copy_only=False), unit="us", utc=True)
            ).astype("datetime64[ns, UTC]")
        elif kind == "bool":
            out[name] = pd.Series(
                col.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get), dtype="boolean"
            )
        elif kind == "str":
            out[name] = col.to_pandas().astype("str")
        else:
            out[name] = col.to_pandas().astype("float64")
    return pd.DataFrame(out, columns=names)


def _bucket_seconds(conn: psycopg.Connection, bucket: str | float | timedelta) -> float:
    if isinstance(bucket, timedelta):
        seconds = bucket.total_seconds()
    else:
        try:
            seconds = parse_duration(bucket)
        except ValueError:
            with storage_errors(f"not a bucket size: {bucket!r}"), reading(conn):
                row = conn.execute(
                    "SELECT extract(epoch FROM %s::interval)::float8", (bucket,)
                ).fetchone()
            seconds = float(row[0]) if row else 0.0
    if seconds <= 0:
        raise StorageError(f"bucket size must be positive, got {bucket!r}")
    return seconds
