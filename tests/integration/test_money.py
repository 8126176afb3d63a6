"""Money is exact: stored as numeric, summed exactly, converted in place from wave-1 floats."""

from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import build_scored
from workbench import storage
from workbench.storage import write_batch
from workbench.storage.connection import connect
from workbench.storage.migrations import MIGRATIONS, upgrade

pytestmark = pytest.mark.integration


def _amount_texts(n: int, seed: int) -> list[str]:
    """Decimal amounts whose float sum is not exact: tenths, odd cents, large and tiny."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        whole = rng.choice([0, 1, 9, 19, 99, 12_345, 999_999_999, rng.randrange(0, 10_000)])
        out.append(f"{whole}.{rng.randrange(0, 100):02d}")
    return out


def _store(dsn: str, texts: list[str]) -> None:
    with connect(dsn) as conn:
        for part in range(0, len(texts), 1000):  # several batches, so several COPYs
            chunk = texts[part : part + 1000]
            batch = build_scored(len(chunk), prefix=f"tx{part:06d}-")
            # Amounts enter a batch by the schema's contract: the nearest double to the cents.
            cents = np.array([int(t.replace(".", "")) for t in chunk], dtype=np.int64)
            batch.frame["amount"] = cents / 100.0
            write_batch(conn, batch)


def test_stored_sum_equals_the_decimal_sum_of_the_input_in_every_run(databases, template_db):
    texts = _amount_texts(5000, seed=7)
    expected = sum(Decimal(t) for t in texts)
    sums = []
    for run in range(2):
        with databases.fresh(f"wb_money{run}", template=template_db) as dsn:
            _store(dsn, texts)
            with connect(dsn) as conn:
                total, count, kind = conn.execute(
                    "SELECT sum(amount), count(*), pg_typeof(sum(amount))::text FROM transactions"
                ).fetchone()
                per_row = conn.execute("SELECT amount FROM transactions ORDER BY tx_id").fetchall()
        assert count == len(texts)
        assert kind == "numeric"
        assert total == expected
        assert [r[0] for r in per_row] == [Decimal(t) for t in texts]
        sums.append(total)
    assert sums[0] == sums[1]


def test_the_float_sum_of_the_same_input_would_not_be_exact():
    # Guards the test above against an input on which floating point happens to be exact.
    texts = _amount_texts(5000, seed=7)
    as_float = 0.0
    for t in texts:
        as_float += float(t)
    assert Decimal(repr(as_float)) != sum(Decimal(t) for t in texts)


def test_wave1_float_amounts_are_converted_in_place(empty_dsn):
    with connect(empty_dsn) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in MIGRATIONS[:4]:  # the wave-1 schema: amount double precision
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
        conn.execute(
            "CREATE TABLE transactions_p20260101 PARTITION OF transactions"
            " FOR VALUES FROM ('2026-01-01') TO ('2026-01-02')"
        )
        conn.execute(
            "INSERT INTO transactions (tx_id, ts, card_id, amount) VALUES"
            " ('a', '2026-01-01T01:00Z', 'c', 0.1::float8 + 0.2::float8),"
            " ('b', '2026-01-01T02:00Z', 'c', 123.45), ('c', '2026-01-01T03:00Z', 'c', 1e9)"
        )
        applied = upgrade(conn)
        assert "0002" in applied  # revision 0002 = the old runner's migration 5
        rows = conn.execute(
            "SELECT tx_id, amount, pg_typeof(amount)::text FROM transactions ORDER BY tx_id"
        ).fetchall()
    assert rows == [
        ("a", Decimal("0.30"), "numeric"),
        ("b", Decimal("123.45"), "numeric"),
        ("c", Decimal("1000000000.00"), "numeric"),
    ]


def test_amounts_read_back_into_frames_are_the_nearest_doubles(conn):

    texts = ["0.10", "0.20", "999999999.99", "12.34"]
    batch = build_scored(len(texts))
    batch.frame["amount"] = pd.Series([float(t) for t in texts])
    write_batch(conn, batch)
    frame = storage.transactions.load(
        conn, pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")
    )
    assert frame["amount"].tolist() == [float(t) for t in texts]
    assert (
        np.rint(frame["amount"].to_numpy() * 100).astype(np.int64) == [10, 20, 99999999999, 1234]
    ).all()
