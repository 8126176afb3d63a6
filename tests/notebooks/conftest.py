"""A real PostgreSQL database seeded by the simulator pipeline, for the notebooks to read.

The server comes from ``WORKBENCH_TEST_DSN`` (default: postgres on 127.0.0.1:5432, trust
auth); when that variable is not set and no server answers there, an embedded PostgreSQL is
started, as in ``tests/integration``. The database is created fresh, migrated, filled by the
real pipeline for a bounded number of rows and dropped WITH FORCE at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator
from workbench.storage.connection import connect, describe, one_line
from workbench.storage.migrations import upgrade

ROOT = Path(__file__).resolve().parents[2]
SEED_ROWS = 12_000
# ~1,000 transactions per simulated day: about 12 days of history, longer than the default
# rules' 7-day label delay; fraud more frequent than the defaults so every scenario shows.
SIMULATOR = {
    "seed": 5,
    "sim_customers": 1500,
    "sim_terminals": 400,
    "batch_rows": 1000,
    "rate": 1000.0,
    "sim_speedup": 86_400.0,
    "fraud_compromised_terminal": 0.005,
    "fraud_leaked_card": 0.005,
    "fraud_card_testing": 0.002,
    "fraud_account_takeover": 0.003,
}

_DSN = os.environ.get("WORKBENCH_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def nb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server DSN: the configured or default server, else an embedded one."""
    embedded = None
    dsn = _DSN
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        if "WORKBENCH_TEST_DSN" in os.environ:
            pytest.skip(f"no PostgreSQL at {describe(dsn)} ({one_line(exc)})")
        from workbench.storage.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
        dsn = embedded.start()
    try:
        yield dsn
    finally:
        if embedded is not None:
            embedded.stop()


@pytest.fixture(scope="session")
def seeded_dsn(nb_server: str) -> Iterator[str]:
    """DSN of a fresh database holding ``SEED_ROWS`` simulated, scored transactions."""
    name = f"wb_nb_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(nb_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = conninfo.make_conninfo(nb_server, dbname=name)
    try:
        with connect(dsn) as conn:
            upgrade(conn)
        ruleset = load_rules(ROOT / "rules")
        writer = RetryingWriter(
            dsn,
            source="simulator",
            worker="notebook-tests",
            alert_min_band=ruleset.alert.min_band,
            alert_dedup_s=ruleset.alert.dedup_s,
        )
        pipeline = Pipeline(Simulator(**SIMULATOR), Detector(ruleset), writer)
        asyncio.run(pipeline.run(max_records=SEED_ROWS))
        yield dsn
    finally:
        with psycopg.connect(nb_server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
