r"""The read API (and the analysts' few writes): pandas DataFrames for dashboards and notebooks.

Every function takes a *source*: a :class:`~workbench.storage.store.Store` (a pooled
connection is borrowed: what the dashboard and notebooks pass), a SQLAlchemy connection, or a
psycopg connection. Small answers (a page of rows) are SQLAlchemy Core ``select()``\ s over
:mod:`workbench.storage.tables`, typed from the table declarations; large ranges
(:func:`load_transactions`, :func:`load_hits`) stream ``COPY (SELECT ...) TO STDOUT`` into
pyarrow's CSV reader, which is many times faster than building rows in Python. Frames use the
batch schema's dtypes: ``str`` text, ``datetime64[ns, UTC]`` times, ``float64`` numbers,
nullable ``boolean`` labels. ``rule_hits`` is a dict per row in page-sized answers and JSON
text in bulk loads (use :func:`load_hits` for a long frame of hits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.json import Jsonb

from workbench import bands
from workbench.durations import parse_duration
from workbench.errors import StorageError
from workbench.schema import COLUMNS, NAMES
from workbench.storage import tables
from workbench.storage.connection import reading, storage_errors
from workbench.storage.store import Source, execute, raw

DISPOSITIONS = ("confirmed_fraud", "false_positive", "valuable")
RULE_SET_STATUSES = ("accepted", "rejected")
MAX_BUCKETS = 100_000
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # buckets align to UTC midnight

_TX_COLUMNS = tables.names(tables.transactions)
_TX = tables.transactions
_ALERTS = tables.alerts
_RULE_SETS = tables.rule_sets
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


def _dtype(type_: sa.types.TypeEngine) -> str | None:
    """The pandas dtype of a page-sized answer's column of SQL type ``type_``."""
    if isinstance(type_, sa.DateTime):
        return "datetime64[ns, UTC]"
    if isinstance(type_, sa.Boolean):
        return "boolean"
    if isinstance(type_, sa.Integer):
        return "int64"
    if isinstance(type_, sa.Float | sa.Numeric):  # Double is a Float; money is read as float64
        return "float64"
    if isinstance(type_, sa.String):
        return "str"
    return None  # jsonb: dicts as the driver gives them


def recent_transactions(source: Source, limit: int = 100, since: datetime | None = None):
    """The newest ``limit`` stored transactions (event time), newest first; only those with
    ``ts > since`` when given."""
    query = sa.select(*_TX.c).order_by(_TX.c.ts.desc(), _TX.c.tx_id.desc()).limit(int(limit))
    if since:
        query = query.where(_TX.c.ts > since)
    return _fetch(source, query, "cannot read recent transactions")


def card_history(source: Source, card_id: str, limit: int = 100) -> pd.DataFrame:
    """A card's newest ``limit`` transactions, newest first."""
    query = (
        sa.select(*_TX.c)
        .where(_TX.c.card_id == card_id)
        .order_by(_TX.c.ts.desc(), _TX.c.tx_id.desc())
        .limit(int(limit))
    )
    return _fetch(source, query, "cannot read card history")


def bucketed(
    source: Source, start: datetime, end: datetime, bucket: str | float | timedelta = "1m"
) -> pd.DataFrame:
    """Per time bucket in ``[start, end)`` (event time): ``bucket``, ``transactions``, one
    count per band (``low``, ``medium``, ``high``), ``mean_score``, ``p95_score``,
    ``amount``, ``fraud`` (labelled fraud) and ``alerts`` (alerts opened, by event time).
    Every bucket is present; empty ones have zero counts and null scores.

    ``bucket``: ``"1m"``-style duration, seconds, a timedelta, or PostgreSQL interval text.
    """
    seconds = _bucket_seconds(source, bucket)
    if (end - start).total_seconds() / seconds > MAX_BUCKETS:
        raise StorageError(
            f"too many buckets: {(end - start)} in buckets of {seconds:g}s (at most {MAX_BUCKETS})"
        )
    # Band names are our own constants (workbench.bands), never user text.
    band_counts = ", ".join(
        f"count(*) FILTER (WHERE band = '{b}') AS \"{b.lower()}\"" for b in bands.LABELS
    )
    band_out = ", ".join(f'coalesce(t."{b.lower()}", 0) AS "{b.lower()}"' for b in bands.LABELS)
    query = f"""
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
    """
    params = {"step": timedelta(seconds=seconds), "origin": _ORIGIN, "start": start, "end": end}
    text = query
    for name in params:
        text = text.replace(f"%({name})s", f":{name}")
    columns = {"bucket": sa.DateTime(), "transactions": sa.BigInteger()}
    columns |= {b.lower(): sa.BigInteger() for b in bands.LABELS}
    columns |= {"mean_score": sa.Double(), "p95_score": sa.Double(), "amount": sa.Numeric()}
    columns |= {"fraud": sa.BigInteger(), "alerts": sa.BigInteger()}
    statement = sa.text(text).bindparams(**params).columns(**columns)
    return _fetch(source, statement, "cannot read bucketed statistics")


def alerts(
    source: Source,
    status: str | None = None,
    limit: int = 100,
    *,
    alert_id: int | None = None,
) -> pd.DataFrame:
    """Alerts, newest first; only ``status`` ('open' or 'closed') or the one ``alert_id``
    when given."""
    query = sa.select(*(_ALERTS.c[c] for c in _ALERT_COLUMNS))
    if status:
        query = query.where(_ALERTS.c.status == status)
    if alert_id is not None:
        query = query.where(_ALERTS.c.id == int(alert_id))
    query = query.order_by(_ALERTS.c.id.desc()).limit(int(limit))
    return _fetch(source, query, "cannot read alerts")


def alert_hits(source: Source, alert_id: int) -> pd.DataFrame:
    """The transactions attached to one alert (the opening one included), oldest first."""
    h = tables.alert_hits
    query = sa.select(*h.c).where(h.c.alert_id == int(alert_id)).order_by(h.c.ts, h.c.tx_id)
    return _fetch(source, query, "cannot read alert hits")


def set_disposition(
    source: Source, alert_id: int, disposition: str, user: str, notes: str | None = None
) -> None:
    """Close an alert with the analyst's verdict (confirmed_fraud, false_positive, valuable)."""
    if disposition not in DISPOSITIONS:
        raise StorageError(
            f"unknown disposition {disposition!r}: use one of " + ", ".join(DISPOSITIONS)
        )
    with raw(source) as conn, storage_errors(f"cannot close alert {alert_id}"), conn.transaction():
        row = conn.execute(
            "UPDATE alerts SET status = 'closed', disposition = %s, assignee = %s,"
            " notes = coalesce(%s, notes), closed_at = now(), updated_at = now()"
            " WHERE id = %s RETURNING id",
            (disposition, user, notes, int(alert_id)),
        ).fetchone()
    if row is None:
        raise StorageError(f"cannot close alert {alert_id}: no such alert")


def record_rule_set(
    source: Source,
    version: str,
    texts: Mapping[str, str],
    author: str | None,
    status: str,
    error: str | None = None,
) -> int:
    """Record one rule-set load (``texts``: file name -> YAML text); its id."""
    if status not in RULE_SET_STATUSES:
        raise StorageError(f"unknown rule-set status {status!r}: use accepted or rejected")
    with raw(source) as conn, storage_errors("cannot record the rule set"), conn.transaction():
        row = conn.execute(
            "INSERT INTO rule_sets (version, files, author, status, error)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (version, Jsonb(dict(texts)), author, status, error),
        ).fetchone()
    assert row is not None
    return int(row[0])


def rule_set_history(source: Source, limit: int = 50) -> pd.DataFrame:
    """Rule-set loads, newest first: id, version, created_at, author, status, error, files."""
    r = _RULE_SETS.c
    query = (
        sa.select(r.id, r.version, r.created_at, r.author, r.status, r.error, r.files)
        .order_by(r.id.desc())
        .limit(int(limit))
    )
    return _fetch(source, query, "cannot read rule-set history")


def dead_letters(source: Source, limit: int = 100) -> pd.DataFrame:
    """The newest dead letters: id, received_at, source, worker, raw, reason."""
    d = tables.dead_letters.c
    query = (
        sa.select(d.id, d.received_at, d.source, d.worker, d.raw, d.reason)
        .order_by(d.id.desc())
        .limit(int(limit))
    )
    return _fetch(source, query, "cannot read dead letters")


def counts(source: Source, *, estimate: bool = False) -> dict[str, int]:
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
    row = _one(source, sa.text(query), "cannot count rows")
    keys = ("stored", "dead", "alerts_open", "alerts_closed", "rule_sets", "batches", "partitions")
    return dict(zip(keys, (int(v) for v in row), strict=True))  # type: ignore[union-attr]


def open_alert_count(source: Source) -> int:
    """How many alerts are open (served by the partial index on open alerts)."""
    query = sa.select(sa.func.count()).select_from(_ALERTS).where(_ALERTS.c.status == "open")
    return int(_one(source, query, "cannot count open alerts")[0])


def last_rule_set(source: Source) -> dict[str, Any] | None:
    """The newest rule-set load without its files: id, version, created_at, author, status,
    error; None when no rule set was ever loaded."""
    r = _RULE_SETS.c
    query = sa.select(r.id, r.version, r.created_at, r.author, r.status, r.error)
    rows, names = _rows(
        source, query.order_by(r.id.desc()).limit(1), "cannot read the last rule-set load"
    )
    return dict(zip(names, rows[0], strict=True)) if rows else None


def transaction(source: Source, tx_id: str, ts: datetime) -> pd.DataFrame:
    """The stored transaction ``(tx_id, ts)`` as a one-row frame (empty when absent)."""
    query = sa.select(*_TX.c).where(_TX.c.ts == ts, _TX.c.tx_id == tx_id)
    return _fetch(source, query, "cannot read transaction")


def rule_set_files(source: Source, version: str) -> dict[str, str] | None:
    """The YAML files (name -> text) of the newest accepted load of rule-set ``version``."""
    r = _RULE_SETS.c
    query = (
        sa.select(r.files)
        .where(r.version == version, r.status == "accepted")
        .order_by(r.id.desc())
        .limit(1)
    )
    row = _one(source, query, "cannot read rule-set files", optional=True)
    return None if row is None else {str(k): str(v) for k, v in row[0].items()}


RULES_CHANNEL = "workbench_rules"  # NOTIFY payload: the version of a newly accepted rule set
_RULE_SETS_LOCK = 0x7275_6C65  # advisory lock that serialises rule-set publication ("rule")


def publish_rule_set(
    source: Source,
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
    # Raw psycopg: the advisory lock and the NOTIFY belong to this one session's transaction.
    with raw(source) as conn, storage_errors("cannot publish the rule set"), conn.transaction():
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


def active_rule_set(source: Source) -> dict[str, Any] | None:
    """The rule set in effect — the newest accepted row: id, version, created_at, author,
    files (name -> YAML text); None when none was ever accepted."""
    r = _RULE_SETS.c
    query = (
        sa.select(r.id, r.version, r.created_at, r.author, r.files)
        .where(r.status == "accepted")
        .order_by(r.id.desc())
        .limit(1)
    )
    row = _one(source, query, "cannot read the active rule set", optional=True)
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


def rule_set_accepted_before(source: Source, version: str) -> bool:
    """Whether rule-set ``version`` was ever accepted."""
    r = _RULE_SETS.c
    query = sa.select(sa.exists().where(r.version == version, r.status == "accepted"))
    return bool(_one(source, query, "cannot read rule-set history")[0])


def recent_batch(source: Source, limit: int = 1000) -> pd.DataFrame:
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
    return _copy_out(source, query, kinds, "cannot read recent transactions")


def time_bounds(source: Source) -> tuple[datetime, datetime] | None:
    """Event times of the oldest and newest stored transaction; None when there are none."""
    query = sa.select(sa.func.min(_TX.c.ts), sa.func.max(_TX.c.ts))
    row = _one(source, query, "cannot read the stored time range")
    return None if row[0] is None else (row[0], row[1])


def pipeline_totals(source: Source) -> dict[str, Any]:
    """Totals over every committed batch (from ``pipeline_stats``): ``stored``, ``dead``,
    ``alerts_opened``, ``batches`` and ``last_commit`` (None before the first batch)."""
    p = tables.pipeline_stats.c
    query = sa.select(
        sa.func.coalesce(sa.func.sum(p.stored), 0),
        sa.func.coalesce(sa.func.sum(p.dead), 0),
        sa.func.coalesce(sa.func.sum(p.alerts_opened), 0),
        sa.func.count(),
        sa.func.max(p.committed_at),
    )
    stored, dead, opened, batches, last = _one(source, query, "cannot read pipeline totals")
    return {
        "stored": int(stored),
        "dead": int(dead),
        "alerts_opened": int(opened),
        "batches": int(batches),
        "last_commit": last,
    }


def stream_position(
    store: Source, source: str, tx_prefix: str, *, batches: int = 50
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
    with (
        raw(store) as conn,
        storage_errors("cannot read the stored stream position"),
        reading(conn),
    ):
        row = conn.execute(query, params).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]) + 1, row[1]


def load_transactions(source: Source, start: datetime, end: datetime) -> pd.DataFrame:
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
    return _copy_out(source, query, kinds, "cannot load transactions")


def load_hits(source: Source, start: datetime, end: datetime) -> pd.DataFrame:
    """Long frame of rule hits (tx_id, ts, rule_id, points) of transactions in [start, end)."""
    query = sql.SQL(
        "SELECT t.tx_id, (extract(epoch FROM t.ts) * 1000000)::bigint, e.key,"
        " e.value::double precision FROM transactions t, jsonb_each(t.rule_hits) e"
        " WHERE t.ts >= {} AND t.ts < {} ORDER BY t.ts, t.tx_id, e.key"
    ).format(sql.Literal(start), sql.Literal(end))
    kinds = {"tx_id": "str", "ts": "timestamp", "rule_id": "str", "points": "float"}
    return _copy_out(source, query, kinds, "cannot load rule hits")


def _rows(source: Source, query: Any, action: str) -> tuple[list[tuple], list[str]]:
    with storage_errors(action):
        return execute(source, query)


def _one(source: Source, query: Any, action: str, *, optional: bool = False) -> Any:
    rows, _ = _rows(source, query, action)
    if not rows and not optional:
        raise StorageError(f"{action}: no row")
    return rows[0] if rows else None


def _fetch(source: Source, query: Any, action: str) -> pd.DataFrame:
    """A Core statement's rows as a frame, typed from its columns' SQL types."""
    rows, names = _rows(source, query, action)
    frame = (
        pd.DataFrame(rows, columns=names)
        if rows
        else pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    )
    for name, column in zip(names, query.selected_columns, strict=True):
        dtype = _dtype(column.type)
        if dtype is None:
            continue
        col = frame[name]
        if dtype.startswith("datetime"):
            frame[name] = pd.to_datetime(col, utc=True).astype(dtype)
        elif dtype == "str":
            frame[name] = (
                col.astype("str").where(col.notna(), None) if len(col) else col.astype("str")
            )
        else:
            frame[name] = col.astype(dtype)
    return frame


def _copy_out(
    source: Source, query: sql.Composable, kinds: Mapping[str, str], action: str
) -> pd.DataFrame:
    # Raw psycopg COPY, not SQLAlchemy: COPY is not in its API, and streaming CSV into pyarrow
    # is 5-10x faster than fetching the same rows as Python tuples.
    data = bytearray()
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with (
        raw(source) as conn,
        storage_errors(action),
        reading(conn),
        conn.cursor() as cur,
        cur.copy(statement) as copy,
    ):
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


def _bucket_seconds(source: Source, bucket: str | float | timedelta) -> float:
    if isinstance(bucket, timedelta):
        seconds = bucket.total_seconds()
    else:
        try:
            seconds = parse_duration(bucket)
        except ValueError:
            query = sa.select(
                sa.func.extract("epoch", sa.cast(sa.literal(str(bucket)), sa.Interval))
            )
            row = _one(source, query, f"not a bucket size: {bucket!r}", optional=True)
            seconds = float(row[0]) if row and row[0] is not None else 0.0
    if seconds <= 0:
        raise StorageError(f"bucket size must be positive, got {bucket!r}")
    return seconds
