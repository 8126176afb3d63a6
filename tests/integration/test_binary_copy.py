"""The binary COPY payloads store exactly what the CSV ones store (read back from PostgreSQL).

Each example builds one scored batch, COPYs the writer's direct payloads in both forms into
two tables shaped like the real ones, and compares every stored value as PostgreSQL prints it
(``row(...)::text``): hostile text, empty text vs NULL, NaN/infinite/extreme doubles, amounts
from 0 to the largest numeric(14,2), times before and after 2000-01-01, NULL booleans.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_scored
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator
from workbench.storage import binary_copy, connect, counts
from workbench.storage.prepared import ALERT_COLUMNS, DIRECT_COLUMNS, PreparedBatch
from workbench.storage.writer import _copy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = [
    "", " ", '"', '""', ",", "\\", "\\N", "NULL", "a\nb", "a\r\nb", "\t", "'; DROP TABLE x; --",
    "<script>alert(1)</script>", "é", "日本語", "😀", "\ufffd", "nul\x00byte", "x" * 300,
]  # fmt: skip
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20), st.none())
double = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308]),
)
cents = st.one_of(
    st.integers(0, 99_999_999_999_999), st.sampled_from([0, 1, 99, 100, 99_999_999_999_999])
)
micros = st.integers(-(2**40), 4_102_444_800_000_000)  # around 1935 .. 2100
flag = st.sampled_from([True, False, None])

TEXT_COLUMNS = ("card_id", "customer_id", "terminal_id", "merchant_category", "currency",
    "country", "channel", "device_id", "fraud_scenario", "band", "rule_set_version")  # fmt: skip

row = st.fixed_dictionaries(
    {
        **{c: text for c in TEXT_COLUMNS},
        "card_id": st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)),  # NOT NULL
        "cents": cents,
        "us": micros,
        "lat": double,
        "lon": double,
        "risk_score": double,
        "is_fraud": flag,
    }
)


def _batch(rows: list[dict]) -> PreparedBatch:
    scored = build_scored(len(rows), scores=[(i * 37) % 100 for i in range(len(rows))])
    frame = scored.frame.copy()
    for c in TEXT_COLUMNS:
        frame[c] = pd.Series([r[c] for r in rows], dtype=frame[c].dtype)
    frame["amount"] = np.array([r["cents"] for r in rows], dtype=np.int64) / 100.0
    us = np.array([r["us"] for r in rows], dtype=np.int64)
    frame["ts"] = pd.Series(pd.to_datetime(us, unit="us", utc=True)).astype("datetime64[ns, UTC]")
    for c in ("lat", "lon", "risk_score"):
        frame[c] = np.array([r[c] for r in rows], dtype=np.float64)
    frame["is_fraud"] = pd.array([r["is_fraud"] for r in rows], dtype="boolean")
    return PreparedBatch(dataclasses.replace(scored, frame=frame), alert_min_band="medium")


def _stored(conn, table: str, columns: tuple[str, ...]) -> list[str]:
    cols = ", ".join(columns)
    return [r[0] for r in conn.execute(f"SELECT row({cols})::text FROM {table} ORDER BY 1")]


def _both(conn, batch: PreparedBatch, name: str, columns: tuple[str, ...], like: str):
    """The payload ``name`` of ``batch`` COPYed as binary and as CSV; both tables' rows."""
    text_batch = batch.like(batch.scored)
    text_batch.binary = False
    out = []
    for form, b in (("binary", batch), ("csv", text_batch)):
        payload = getattr(b, name)
        assert payload[1] == form
        table = f"rt_{form}"
        with conn.transaction():
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (LIKE {like} INCLUDING DEFAULTS)")
            with conn.cursor() as cur:
                _copy(cur, table, columns, *payload)
        out.append(_stored(conn, table, columns))
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(row, min_size=1, max_size=30))
def test_binary_payloads_store_what_the_csv_payloads_store(conn, rows):
    batch = _batch(rows)
    binary, csv = _both(conn, batch, "direct_tx", DIRECT_COLUMNS, "transactions")
    assert binary == csv and len(binary) == len(rows)
    binary, csv = _both(conn, batch, "direct_ids", ("tx_id", "ts_us"), "transaction_ids")
    assert binary == csv
    if batch.direct_alert is not None:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS rt_alert (tx_id text, ts timestamptz, card_id text,"
            " amount numeric(14, 2), currency text, risk_score double precision, band text,"
            " rule_hits jsonb, rule_set_version text, alertable boolean)"
        )
        binary, csv = _both(conn, batch, "direct_alert", ALERT_COLUMNS, "rt_alert")
        assert binary == csv and len(binary) == int((batch.ranks >= batch.keep_rank).sum())


def test_amounts_are_stored_exactly_to_the_cent(conn):
    rows = [dict.fromkeys(TEXT_COLUMNS, "x") for _ in range(5)]
    amounts = [0, 1, 10, 123_456_789_012_34, 99_999_999_999_999]
    for r, c in zip(rows, amounts, strict=True):
        r.update(cents=c, us=0, lat=0.0, lon=0.0, risk_score=1.0, is_fraud=None)
    batch = _batch(rows)
    assert batch.direct_tx[1] == "binary"
    with conn.transaction():
        conn.execute("CREATE TABLE rt (LIKE transactions INCLUDING DEFAULTS)")
        with conn.cursor() as cur:
            _copy(cur, "rt", DIRECT_COLUMNS, *batch.direct_tx)
    stored = [r[0] for r in conn.execute("SELECT amount::text FROM rt ORDER BY amount")]
    assert stored == ["0.00", "0.01", "0.10", "123456789012.34", "999999999999.99"]


def test_an_amount_off_the_cent_grid_is_sent_as_text():
    assert binary_copy.cents_exact(np.array([1.25, 0.0, np.nan])).tolist() == [125, 0, 0]
    assert binary_copy.cents_exact(np.array([10.005])) is None
    assert binary_copy.cents_exact(np.array([np.inf])) is None
    assert binary_copy.cents_exact(np.array([1e12])) is None  # beyond numeric(14, 2)
    rows = [dict.fromkeys(TEXT_COLUMNS, "x")]
    rows[0].update(cents=1, us=0, lat=0.0, lon=0.0, risk_score=1.0, is_fraud=True)
    batch = _batch(rows)
    batch.frame.loc[0, "amount"] = 10.005
    assert batch.direct_tx[1] == "csv"


def test_a_worker_writing_csv_stores_what_a_worker_writing_binary_stores(databases, template_db):
    """The whole write path with each form (``RetryingWriter(binary_copy=...)``): the same
    simulated stream stores the same transactions, ids, alerts and counts."""
    ruleset = load_rules(ROOT / "rules")
    sim = {"seed": 4, "sim_customers": 300, "sim_terminals": 60, "batch_rows": 300,
           "rate": 1000.0, "sim_speedup": 144_000.0}  # fmt: skip
    stored = {}
    for binary in (True, False):
        with databases.fresh("wb_bin", template=template_db) as dsn:
            writer = RetryingWriter(
                dsn,
                source="simulator",
                worker="test",
                alert_min_band=ruleset.alert.min_band,
                alert_dedup_s=ruleset.alert.dedup_s,
                binary_copy=binary,
            )
            # the form the worker's payloads take (the flag reaches them)
            assert writer.prepare(build_scored(3)).direct_tx[1] == ("binary" if binary else "csv")
            pipeline = Pipeline(Simulator(**sim), Detector(ruleset), writer)
            asyncio.run(pipeline.run(max_records=3000))
            with connect(dsn) as conn:
                tx = conn.execute(
                    "SELECT row(tx_id, ts, card_id, customer_id, terminal_id, merchant_category,"
                    " amount, currency, country, lat, lon, channel, device_id, is_fraud,"
                    " fraud_scenario, risk_score, band, rule_hits, rule_set_version)::text"
                    " FROM transactions ORDER BY tx_id"
                ).fetchall()
                ids = conn.execute(
                    "SELECT tx_id, ts_us FROM transaction_ids ORDER BY tx_id"
                ).fetchall()
                alerts = conn.execute(
                    "SELECT tx_id, card_id, band, risk_score FROM alerts ORDER BY tx_id"
                ).fetchall()
                stored[binary] = (tx, ids, alerts, counts(conn))
    assert len(stored[True][0]) >= 3000 and len(stored[True][2]) > 0  # not vacuous
    assert stored[True] == stored[False]
