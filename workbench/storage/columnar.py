"""Columnar reads: a query's rows as Arrow record batches, decoded in C++, never row by row.

:func:`copy_out <workbench.storage.frames.copy_out>` streams ``COPY ... (FORMAT csv)`` into
pyarrow's CSV parser: the server formats every number and time as text and the client parses
it back. An :class:`ArrowReader` asks the server for ``COPY ... (FORMAT binary)`` through the
ADBC PostgreSQL driver instead (libpq underneath), which decodes the fixed-width binary fields
straight into Arrow columns: times are microseconds since 2000-01-01 (no time zone or text on
the way, whatever the session's ``TimeZone``), floats are IEEE doubles, text is UTF-8.

Money stays exact: ``numeric`` would arrive as decimal text, so the queries select the
amount as integer minor units (``(amount * 100)::bigint``, exact for ``numeric(14, 2)``) and
:func:`to_frame` divides by 100 once, in float64 (correctly rounded: the nearest double to the
decimal amount, which is the batch schema's money contract and what the CSV path yields).

The driver opens a connection of its own, from the source's connection parameters (password
included); one reader serves many queries (a backtest reads day after day on one). It runs in
autocommit, so a long read holds no snapshot between queries. Rows that a caller's open
transaction wrote are not visible to it: :func:`reader_for` says when a source must be read
on its own connection instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import conninfo, sql

from workbench.errors import StorageError
from workbench.schema import STR
from workbench.storage.frames import Source, raw

__all__ = ["CENTS_SUFFIX", "ArrowReader", "reader_for", "to_frame"]

CENTS_SUFFIX = "__cents"
"""A selected column named ``<name>__cents`` (an integer) becomes float column ``<name>``."""


class ArrowReader:
    """An ADBC connection that reads composed queries as Arrow tables."""

    def __init__(self, dsn: str) -> None:
        try:
            self._conn = adbc.connect(dsn, autocommit=True)
        except Exception as exc:  # the driver's errors are its own classes, not psycopg's
            raise StorageError(f"cannot open a columnar read connection: {exc}") from exc

    def table(self, query: sql.Composable, action: str) -> pa.Table:
        """The rows of ``query`` as one Arrow table (the caller bounds its size)."""
        text = query.as_string(None)
        try:
            with self._conn.cursor() as cur:
                cur.execute(text)
                return cur.fetch_arrow_table()
        except Exception as exc:
            raise StorageError(f"{action}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ArrowReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dsn(conn: psycopg.Connection) -> str:
    # conn.info.dsn leaves the password out; the libpq options of the live connection hold it.
    # Only those set apart from libpq's defaults: the driver's own libpq may be older and not
    # know every keyword of psycopg's.
    params = {
        o.keyword.decode(): o.val.decode()
        for o in conn.pgconn.info
        if o.val is not None and o.val != o.compiled and o.keyword != b"replication"
    }
    return conninfo.make_conninfo(**params)


@contextlib.contextmanager
def reader_for(source: Source | ArrowReader) -> Iterator[ArrowReader | None]:
    """An :class:`ArrowReader` on the database of ``source``, or None when ``source`` is a
    connection inside an open transaction (a fresh connection would not see its own rows).
    An ArrowReader given as ``source`` is lent as it is, and stays open."""
    if isinstance(source, ArrowReader):
        yield source
        return
    with raw(source) as conn:
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        dsn = _dsn(conn) if idle else None
    if dsn is None:
        yield None
        return
    with ArrowReader(dsn) as reader:
        yield reader


def _text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    # jsonb arrives as Arrow's JSON extension type: its storage is the JSON text.
    if isinstance(col.type, pa.ExtensionType):
        return pa.chunked_array([c.storage for c in col.chunks], col.type.storage_type)
    return col


def to_frame(table: pa.Table, kinds: Mapping[str, str]) -> pd.DataFrame:
    """A frame of the batch schema's dtypes from an Arrow table of ``kinds``'s columns
    (``str``, ``timestamp``, ``float``, ``bool``); ``<name>__cents`` columns give ``<name>``."""
    out: dict[str, pd.Series | np.ndarray] = {}
    for name, kind in kinds.items():
        if name not in table.column_names and name + CENTS_SUFFIX in table.column_names:
            cents = table.column(name + CENTS_SUFFIX).to_numpy()  # int64, or float with NaN
            out[name] = pd.Series(cents.astype(np.float64) / 100.0)
            continue
        col = table.column(name)
        if kind == "timestamp":
            out[name] = pd.Series(col.to_pandas()).astype("datetime64[ns, UTC]")
        elif kind == "bool":
            out[name] = pd.Series(
                col.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get), dtype="boolean"
            )
        elif kind == "str":
            out[name] = pd.Series(_text(col).to_pandas(types_mapper={pa.string(): STR}.get))
        else:
            out[name] = pd.Series(col.to_numpy(), dtype="float64")
    return pd.DataFrame(out, columns=list(kinds), copy=False)
