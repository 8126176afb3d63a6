"""Real-PostgreSQL fixtures: one migrated template database per session, a fresh copy per test
(the server and the database helpers: ``tests/conftest.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from workbench.pipeline.reload import Publisher, read_directory
from workbench.rules import version_of
from workbench.schema import empty_batch, empty_dead_letters
from workbench.scoring.result import ScoredBatch
from workbench.storage.connection import connect
from workbench.storage.migrations import upgrade


@pytest.fixture(scope="session")
def template_db(databases) -> Iterator[str]:
    """Name of a database migrated once per session; tests get copies of it."""
    name = databases.create("wb_tmpl")
    try:
        with connect(databases.dsn(name)) as conn:
            upgrade(conn)
        yield name
    finally:
        databases.drop(name)


@pytest.fixture
def db_dsn(databases, template_db: str) -> Iterator[str]:
    """DSN of a fresh, migrated database of this test's own."""
    with databases.fresh("wb_test", template=template_db) as dsn:
        yield dsn


@pytest.fixture
def empty_dsn(databases) -> Iterator[str]:
    """DSN of a fresh database with no tables at all (for migration tests)."""
    with databases.fresh("wb_empty", template="template0") as dsn:
        yield dsn


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of the shipped rules directory, for tests that edit or publish it."""
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


@pytest.fixture
def published(db_dsn: str, rules_dir: Path) -> str:
    """``rules_dir`` accepted and recorded as a worker's watcher does it; its version."""
    publisher = Publisher(db_dsn, rules_dir, author="worker-user")
    try:
        assert publisher.check() == "accepted"
    finally:
        publisher.close()
    return version_of(read_directory(rules_dir))


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
