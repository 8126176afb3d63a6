"""Real-PostgreSQL fixtures: one migrated template database per session, a fresh copy per test.

The server comes from ``WORKBENCH_TEST_DSN`` (default: postgres on 127.0.0.1:5432, trust
auth). When that variable is not set and no server answers at the default address, an
embedded PostgreSQL is started for the session in a temporary directory. Every
database created here has a unique name and is dropped (WITH FORCE) afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import conninfo, sql

from workbench.schema import empty_batch, empty_dead_letters
from workbench.scoring.result import ScoredBatch
from workbench.storage.connection import connect, describe, one_line
from workbench.storage.migrations import upgrade

DSN = os.environ.get("WORKBENCH_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _dsn_for(dbname: str) -> str:
    return conninfo.make_conninfo(DSN, dbname=dbname)


def _admin() -> psycopg.Connection:
    return psycopg.connect(DSN, autocommit=True, connect_timeout=3)


def _create(name: str, template: str | None = None) -> None:
    with _admin() as admin:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(query)


def _drop(name: str) -> None:
    with _admin() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server DSN: the configured or default server, else an embedded one."""
    global DSN
    embedded = None
    try:
        with _admin() as admin:
            version = admin.info.server_version
    except psycopg.Error as exc:
        if "WORKBENCH_TEST_DSN" not in os.environ:
            from workbench.storage.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
            DSN = embedded.start()
            with _admin() as admin:
                version = admin.info.server_version
        else:
            pytest.skip(
                f"no PostgreSQL at {describe(DSN)} ({one_line(exc)}); "
                "set WORKBENCH_TEST_DSN to a server where user can CREATE DATABASE"
            )
    if version < 140000:
        pytest.skip(f"PostgreSQL {version} at {describe(DSN)} is too old (need 14+)")
    try:
        yield DSN
    finally:
        if embedded is not None:
            embedded.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> Iterator[str]:
    """Name of a database migrated once per session; tests get copies of it."""
    name = f"wb_tmpl_{os.getpid()}_{secrets.token_hex(3)}"
    _create(name)
    try:
        with connect(_dsn_for(name)) as conn:
            upgrade(conn)
        yield name
    finally:
        _drop(name)


@pytest.fixture
def db_dsn(template_db: str) -> Iterator[str]:
    """DSN of a fresh, migrated database of this test's own."""
    name = f"wb_test_{os.getpid()}_{secrets.token_hex(4)}"
    _create(name, template=template_db)
    try:
        yield _dsn_for(name)
    finally:
        _drop(name)


@pytest.fixture
def empty_dsn(pg_server: str) -> Iterator[str]:
    """DSN of a fresh database with no tables at all (for migration tests)."""
    name = f"wb_empty_{os.getpid()}_{secrets.token_hex(4)}"
    _create(name, template="template0")
    try:
        yield _dsn_for(name)
    finally:
        _drop(name)


@pytest.fixture
def conn(db_dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to this test's database."""
    connection = connect(db_dsn)
    try:
        yield connection
    finally:
        connection.close()


BatchFactory = Callable[..., ScoredBatch]


def build_scored(
    n: int,
    *,
    start: str = "2026-01-01T00:00:00Z",
    step_s: float = 1.0,
    prefix: str = "tx",
    cards: Sequence[str] | None = None,
    scores: Sequence[float] | None = None,
    version: str = "rs-1",
    dead: Sequence[tuple[str, str]] = (),
) -> ScoredBatch:
    """A hand-built scored batch with the schema's dtypes.

    Scores default to ``i % 100``; bands follow 40/70 thresholds. Rows scoring >= 40 hit
    ``big_amount`` (points 40); rows scoring >= 70 also hit ``new_country`` (score - 40).
    """
    proto = empty_batch()
    i = np.arange(n)
    score = np.asarray(scores, dtype="float64") if scores is not None else (i % 100).astype(float)
    ts = pd.Timestamp(start) + pd.to_timedelta(i * step_s, unit="s")
    card = list(cards) if cards is not None else [f"card{k % 50}" for k in i]
    data = {
        "tx_id": [f"{prefix}{k:07d}" for k in i],
        "ts": ts,
        "card_id": card,
        "customer_id": [f"cust{k % 40}" for k in i],
        "terminal_id": [f"term{k % 30}" for k in i],
        "merchant_category": np.where(i % 3 == 0, "grocery", "crypto"),
        "amount": 10.0 + (i % 100) * 1.25,
        "currency": ["EUR"] * n,
        "country": np.where(i % 2 == 0, "FR", "DE"),
        "lat": np.where(i % 5 == 0, np.nan, 48.85),
        "lon": np.where(i % 5 == 0, np.nan, 2.35),
        "channel": ["pos"] * n,
        "device_id": ["unknown"] * n,
        "is_fraud": pd.array([None if k % 7 == 0 else bool(k % 2) for k in i], dtype="boolean"),
        "fraud_scenario": np.where(i % 2 == 1, "leaked_card", ""),
    }
    frame = pd.DataFrame(
        {name: pd.Series(values).astype(proto[name].dtype) for name, values in data.items()}
    )
    frame["risk_score"] = score
    frame["band"] = pd.Series(
        np.where(score >= 70, "High", np.where(score >= 40, "Medium", "Low")), dtype="str"
    )
    frame["rule_set_version"] = pd.Series([version] * n, dtype="str")
    medium = np.flatnonzero(score >= 40)
    high = np.flatnonzero(score >= 70)
    hits = pd.DataFrame(
        {
            "row": np.concatenate([medium, high]).astype("int64"),
            "rule_id": pd.Series(
                ["big_amount"] * len(medium) + ["new_country"] * len(high), dtype="str"
            ),
            "points": np.concatenate([np.full(len(medium), 40.0), score[high] - 40.0]),
        }
    )
    dead_frame = (
        pd.DataFrame(
            {
                "raw": pd.Series([r for r, _ in dead], dtype="str"),
                "reason": pd.Series([why for _, why in dead], dtype="str"),
            }
        )
        if dead
        else empty_dead_letters()
    )
    return ScoredBatch(frame=frame, hits=hits, dead=dead_frame)


@pytest.fixture
def make_batch() -> BatchFactory:
    """The :func:`build_scored` factory, for tests."""
    return build_scored
