"""From statements to frames: what every per-noun read module shares.

A *source* is a :class:`~workbench.storage.store.Store` (a pooled connection is borrowed:
what the dashboard and notebooks pass), a SQLAlchemy ``Connection`` or a psycopg connection.
:func:`execute` runs a SQLAlchemy Core statement on any of them; :func:`fetch` types the
answer from the statement's declared column types; :func:`copy_out` streams a large range with
``COPY (SELECT ...) TO STDOUT`` into pyarrow. Frames use the batch schema's dtypes: ``str``
text, ``datetime64[ns, UTC]`` times, ``float64`` numbers, nullable ``boolean`` labels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy import Connection, Executable
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from workbench.errors import StorageError
from workbench.storage.connection import reading, storage_errors

Source = Any  # Store | sqlalchemy.Connection | psycopg.Connection

_DIALECT = PGDialect_psycopg()


@contextlib.contextmanager
def raw(source: Source) -> Iterator[psycopg.Connection]:
    """The psycopg connection of ``source`` (a pooled one for a store)."""
    if isinstance(source, Connection):
        yield source.connection.driver_connection  # type: ignore[misc]
    elif isinstance(source, psycopg.Connection):
        yield source
    else:  # a Store (not imported here: the store module builds on this one)
        with source.raw() as conn:
            yield conn


def execute(source: Source, statement: Executable) -> tuple[list[tuple], list[str]]:
    """Run a SQLAlchemy Core statement on ``source``; its rows and column names.

    On a psycopg connection the statement is compiled for psycopg and run on it directly (no
    engine is built around a connection the caller owns), leaving it as idle as it was.
    """
    if isinstance(source, Connection):
        result = source.execute(statement)
        return [tuple(r) for r in result.fetchall()], list(result.keys())
    if isinstance(source, psycopg.Connection):
        compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        params = compiled.params
        with reading(source), source.cursor() as cur:
            cur.execute(str(compiled), params)
            rows = cur.fetchall()
            names = [d.name for d in cur.description or ()]
        return rows, names
    with source.connect() as conn:  # a Store: a pooled connection for this statement
        return execute(conn, statement)


def dtype_of(type_: sa.types.TypeEngine) -> str | None:
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


def select_rows(source: Source, query: Any, action: str) -> tuple[list[tuple], list[str]]:
    with storage_errors(action):
        return execute(source, query)


def one(source: Source, query: Any, action: str, *, optional: bool = False) -> Any:
    rows, _ = select_rows(source, query, action)
    if not rows and not optional:
        raise StorageError(f"{action}: no row")
    return rows[0] if rows else None


def fetch(source: Source, query: Any, action: str) -> pd.DataFrame:
    """A Core statement's rows as a frame, typed from its columns' SQL types."""
    rows, names = select_rows(source, query, action)
    frame = (
        pd.DataFrame(rows, columns=names)
        if rows
        else pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    )
    for name, column in zip(names, query.selected_columns, strict=True):
        dtype = dtype_of(column.type)
        if dtype is None:
            continue
        col = frame[name]
        if dtype.startswith("datetime"):
            frame[name] = pd.to_datetime(col, utc=True).astype(dtype)
        elif dtype == "str":
            frame[name] = (
                col.astype("str").where(col.notna(), None) if len(col) else col.astype("str")
            )
        elif dtype == "int64" and col.isna().any():
            frame[name] = col.astype("Int64")  # a nullable integer column holding NULLs
        else:
            frame[name] = col.astype(dtype)
    return frame


def copy_out(
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
