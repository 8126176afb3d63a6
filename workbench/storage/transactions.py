r"""Stored transactions: pages of rows, one card's history, time buckets, bulk loads.

Every function takes a *source* (:data:`~workbench.storage.frames.Source`); through a
:class:`~workbench.storage.store.Store` they are ``store.transactions.recent(...)`` and so
on. Page-sized answers are SQLAlchemy Core ``select()``\ s typed from the table declaration;
large ranges stream ``COPY (SELECT ...) TO STDOUT`` into Arrow, many times faster than building
rows in Python: :func:`load` in binary form through the ADBC driver
(:mod:`~workbench.storage.columnar`), :func:`load_hits` and :func:`recent_batch` as CSV into
pyarrow's CSV reader. ``rule_hits`` is a dict per row in page-sized answers and JSON text in bulk
loads (use :func:`load_hits` for a long frame of hits).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from psycopg import sql

from workbench import bands
from workbench.durations import parse_duration
from workbench.errors import StorageError
from workbench.schema import COLUMNS, NAMES
from workbench.storage import tables
from workbench.storage.columnar import CENTS_SUFFIX, ArrowReader, reader_for, to_frame
from workbench.storage.connection import reading, storage_errors
from workbench.storage.frames import Source, copy_out, fetch, one, raw

__all__ = [
    "bucketed",
    "card_history",
    "fingerprint",
    "get",
    "load",
    "load_hits",
    "recent",
    "recent_batch",
    "stream_position",
    "time_bounds",
]

MAX_BUCKETS = 100_000
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # buckets align to UTC midnight

_TX_COLUMNS = tables.names(tables.transactions)
_TX = tables.transactions
LOAD_KINDS = {c.name: c.kind for c in COLUMNS} | {
    "risk_score": "float",
    "band": "str",
    "rule_hits": "str",
    "rule_set_version": "str",
    "stored_at": "timestamp",
}
"""The columns of :func:`load`'s frame and their kinds (:func:`~.columnar.to_frame`)."""
_LOAD_ACTION = "cannot load transactions"


def recent(source: Source, limit: int = 100, since: datetime | None = None):
    """The newest ``limit`` stored transactions (event time), newest first; only those with
    ``ts > since`` when given."""
    query = sa.select(*_TX.c).order_by(_TX.c.ts.desc(), _TX.c.tx_id.desc()).limit(int(limit))
    if since:
        query = query.where(_TX.c.ts > since)
    return fetch(source, query, "cannot read recent transactions")


def card_history(source: Source, card_id: str, limit: int = 100) -> pd.DataFrame:
    """A card's newest ``limit`` transactions, newest first."""
    query = (
        sa.select(*_TX.c)
        .where(_TX.c.card_id == card_id)
        .order_by(_TX.c.ts.desc(), _TX.c.tx_id.desc())
        .limit(int(limit))
    )
    return fetch(source, query, "cannot read card history")


def get(source: Source, tx_id: str, ts: datetime) -> pd.DataFrame:
    """The stored transaction ``(tx_id, ts)`` as a one-row frame (empty when absent)."""
    query = sa.select(*_TX.c).where(_TX.c.ts == ts, _TX.c.tx_id == tx_id)
    return fetch(source, query, "cannot read transaction")


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
    return fetch(source, statement, "cannot read bucketed statistics")


def load(source: Source | ArrowReader, start: datetime, end: datetime) -> pd.DataFrame:
    """Every stored transaction with ``start <= ts < end``, oldest first.

    Columns: the batch schema, then ``risk_score``, ``band``, ``rule_hits`` (JSON text),
    ``rule_set_version``, ``stored_at``. Read in columnar form (binary COPY into Arrow,
    :mod:`~workbench.storage.columnar`; pass an open ``ArrowReader`` to reuse its connection
    across calls), or with COPY CSV on the source itself when it is inside a transaction.
    """
    kinds = LOAD_KINDS
    where = sql.SQL("FROM transactions WHERE ts >= {} AND ts < {}").format(
        sql.Literal(start), sql.Literal(end)
    )
    with reader_for(source) as reader:
        if reader is not None:
            # Unordered on the server, ordered here: the server's sort of a day's rows took
            # about a third of the read, Arrow's sort of nearly ordered rows a few ms.
            # Money as integer cents: numeric would travel as decimal text.
            select = sql.SQL(", ").join(
                sql.SQL("({} * 100)::bigint AS {}").format(
                    sql.Identifier(c), sql.Identifier(c + CENTS_SUFFIX)
                )
                if c == "amount"
                else sql.Identifier(c)
                for c in _TX_COLUMNS
            )
            table = reader.table(sql.SQL("SELECT {} {}").format(select, where), _LOAD_ACTION)
            return to_frame(_in_order(table), kinds)
    where = sql.SQL("{} ORDER BY ts, tx_id").format(where)
    select = sql.SQL(", ").join(
        sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint").format(sql.Identifier(c))
        if c in ("ts", "stored_at")
        else sql.Identifier(c)
        for c in _TX_COLUMNS
    )
    query = sql.SQL("SELECT {} {}").format(select, where)
    return copy_out(source, query, kinds, _LOAD_ACTION)


def _in_order(table: pa.Table) -> pa.Table:
    """``table``'s rows ordered by ``(ts, tx_id)``, as ``ORDER BY ts, tx_id`` orders them:
    ``tx_id`` has the "C" collation, so byte order, which is Arrow's order of strings."""
    keys = [("ts", "ascending"), ("tx_id", "ascending")]
    order = pc.sort_indices(table.select(["ts", "tx_id"]), sort_keys=keys).to_numpy()
    if np.array_equal(order, np.arange(len(order))):
        return table  # already in order (rows of one partition are stored mostly in order)
    return table.take(order)


def load_hits(source: Source, start: datetime, end: datetime) -> pd.DataFrame:
    """Long frame of rule hits (tx_id, ts, rule_id, points) of transactions in [start, end)."""
    query = sql.SQL(
        "SELECT t.tx_id, (extract(epoch FROM t.ts) * 1000000)::bigint, e.key,"
        " e.value::double precision FROM transactions t, jsonb_each(t.rule_hits) e"
        " WHERE t.ts >= {} AND t.ts < {} ORDER BY t.ts, t.tx_id, e.key"
    ).format(sql.Literal(start), sql.Literal(end))
    kinds = {"tx_id": "str", "ts": "timestamp", "rule_id": "str", "points": "float"}
    return copy_out(source, query, kinds, "cannot load rule hits")


def fingerprint(source: Source, start: datetime, end: datetime) -> tuple[int, datetime | None, int]:
    """What is stored of ``[start, end)``, in one query: the number of transactions, the newest
    ``stored_at`` and the sum of a hash of their ids. Stored transactions are never updated, so
    a row stored into the range later, or a deletion, changes it (a backtest's feature cache
    is keyed by it: :mod:`workbench.analysis.feature_cache`)."""
    query = sa.select(
        sa.func.count(),
        sa.func.max(_TX.c.stored_at),
        sa.func.coalesce(sa.func.sum(sa.func.hashtext(_TX.c.tx_id)), 0),
    ).where(_TX.c.ts >= start, _TX.c.ts < end)
    row = one(source, query, "cannot read what is stored of a time range")
    return int(row[0]), row[1], int(row[2])


def time_bounds(source: Source) -> tuple[datetime, datetime] | None:
    """Event times of the oldest and newest stored transaction; None when there are none."""
    query = sa.select(sa.func.min(_TX.c.ts), sa.func.max(_TX.c.ts))
    row = one(source, query, "cannot read the stored time range")
    return None if row[0] is None else (row[0], row[1])


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
    return copy_out(source, query, kinds, "cannot read recent transactions")


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
            row = one(source, query, f"not a bucket size: {bucket!r}", optional=True)
            seconds = float(row[0]) if row and row[0] is not None else 0.0
    if seconds <= 0:
        raise StorageError(f"bucket size must be positive, got {bucket!r}")
    return seconds
