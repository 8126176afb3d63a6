"""``benchmarks/_db.py``: a benchmark's own database, created and always dropped."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def own_database(monkeypatch, pg_server: str) -> Iterator:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield importlib.import_module("_db").own_database
    sys.modules.pop("_db", None)


def exists(server: str, name: str) -> bool:
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_an_empty_durable_database_dropped_at_the_end(own_database, pg_server: str) -> None:
    name = f"wb_bench_t_plain_{os.getpid()}"
    with own_database(pg_server, "wb_bench_t_plain") as dsn:
        assert exists(pg_server, name)
        with psycopg.connect(dsn) as conn:
            assert conn.info.dbname == name
            tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            assert conn.execute(tables).fetchone() == (0,)  # not migrated: the caller's
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    assert not exists(pg_server, name)


def test_dropped_on_an_error_with_a_connection_still_open(own_database, pg_server) -> None:
    name = f"wb_bench_t_error_{os.getpid()}"
    with (
        pytest.raises(RuntimeError, match="boom"),
        own_database(pg_server, "wb_bench_t_error") as dsn,
    ):
        conn = psycopg.connect(dsn)  # left open: the drop is WITH (FORCE)
        raise RuntimeError("boom")
    conn.close()
    assert not exists(pg_server, name)


def test_a_leftover_of_the_same_name_is_replaced(own_database, pg_server: str) -> None:
    name = f"wb_bench_t_left_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(psycopg.conninfo.make_conninfo(pg_server, dbname=name)) as conn:
        conn.execute("CREATE TABLE stale (x int)")
    with own_database(pg_server, "wb_bench_t_left") as dsn, psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('stale')").fetchone() == (None,)
    assert not exists(pg_server, name)


def test_keep_creates_once_and_keeps(own_database, pg_server: str) -> None:
    name = f"wb_bench_t_keep_{os.getpid()}"
    try:
        with own_database(pg_server, "ignored", keep=name) as dsn, psycopg.connect(dsn) as conn:
            assert conn.info.dbname == name
            conn.execute("CREATE TABLE kept (x int)")
        assert exists(pg_server, name)
        with own_database(pg_server, "ignored", keep=name) as dsn, psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone() == ("kept",)
        assert exists(pg_server, name)
    finally:
        drop(pg_server, name)


def test_sigterm_unwinds_as_ctrl_c_and_drops(own_database, pg_server: str) -> None:
    name = f"wb_bench_t_term_{os.getpid()}"
    term, interrupt = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), own_database(pg_server, "wb_bench_t_term"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here, at the latest
        pytest.fail("SIGTERM did not interrupt the block")
    assert not exists(pg_server, name)
    assert signal.getsignal(signal.SIGTERM) is term  # both handlers restored
    assert signal.getsignal(signal.SIGINT) is interrupt
