"""Stored history read in columnar form (binary COPY -> Arrow): types, NULLs, exact money,
hostile text and time zones, against the CSV path on the same rows and against expectations
written out by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from psycopg import conninfo

from workbench.analysis import backtest, load_history
from workbench.storage import transactions
from workbench.storage.columnar import ArrowReader, reader_for
from workbench.storage.connection import connect
from workbench.storage.partitions import ensure_days

pytestmark = pytest.mark.integration

RULES = {
    "big.yaml": """
bands: {medium: 40, high: 70}
rules:
  - id: big
    when: amount > 100
    score: 80
"""
}

HOSTILE = [
    "tab\there",
    'quote"and,comma',
    "new\nline\r\n",
    "back\\slash\\N",
    "",  # empty text, not NULL
    "NULL",
    "  spaced  ",
    "ünïcødé ✓ 日本",
    "\\.",  # the end-of-data marker of text COPY
    "zero\x01ctl\x7f",
]
# (ts as written, with its offset) -> the instant in UTC
TIMES = [
    ("2026-03-29 01:59:59.999999+00", datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=UTC)),
    ("2026-03-29 03:00:00+02", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("2026-03-28 23:30:00-05:45", datetime(2026, 3, 29, 5, 15, tzinfo=UTC)),
    ("1999-12-31 23:59:59.5+00", datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
    ("1970-01-01 00:00:00+00", datetime(1970, 1, 1, tzinfo=UTC)),
]
AMOUNTS = ["0.00", "0.10", "0.20", "0.29", "19.99", "12345.67", "999999999.99", "1000000000.00"]


def _insert(dsn: str, rows: list[dict]) -> None:
    with connect(dsn) as conn:
        ensure_days(conn, {r["at"].date() for r in rows})
        for r in rows:
            conn.execute(
                "INSERT INTO transactions (tx_id, ts, card_id, customer_id, terminal_id,"
                " merchant_category, amount, currency, country, lat, lon, channel, device_id,"
                " is_fraud, fraud_scenario, risk_score, band, rule_hits, rule_set_version)"
                " VALUES (%(tx)s, %(ts)s::timestamptz, %(card)s, %(text)s, NULL, %(text)s,"
                " %(amount)s::numeric, 'EUR', NULL, %(lat)s, NULL, %(text)s, NULL, %(fraud)s,"
                " NULL, %(score)s, 'Low', %(hits)s::jsonb, %(text)s)",
                r,
            )
        conn.commit()


def _rows() -> list[dict]:
    rows = []
    for i in range(len(HOSTILE) * len(TIMES)):
        text, (ts, at) = HOSTILE[i % len(HOSTILE)], TIMES[i % len(TIMES)]
        rows.append(
            {
                "tx": f"tx{i:03d}-{text}",
                "ts": ts,
                "at": at,
                "card": f"c{i % 3}",
                "text": text,
                "amount": AMOUNTS[i % len(AMOUNTS)],
                "lat": None if i % 4 == 0 else -89.5 + i,
                "fraud": [None, True, False][i % 3],
                "score": None if i % 5 == 0 else i / 7,
                "hits": '{"big": 60, "é\\"x": 1.5}' if i % 2 else "{}",
            }
        )
    return rows


def _csv_load(dsn: str, lo: datetime, hi: datetime) -> pd.DataFrame:
    # Inside an open transaction, load reads on the connection itself: COPY CSV.
    with connect(dsn, autocommit=False) as conn:
        conn.execute("SELECT 1")
        with reader_for(conn) as reader:
            assert reader is None
        return transactions.load(conn, lo, hi)


LO, HI = datetime(1969, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def test_columnar_load_types_nulls_money_and_hostile_text(db_dsn):
    rows = _rows()
    _insert(db_dsn, rows)
    # A session in another time zone: times travel as instants, not as local text.
    dsn = conninfo.make_conninfo(db_dsn, options="-c TimeZone=Asia/Kathmandu")
    with connect(dsn) as conn, reader_for(conn) as reader:
        assert isinstance(reader, ArrowReader)
        got = transactions.load(reader, LO, HI)

    assert len(got) == len(rows)
    by_id = {r["tx"]: r for r in rows}
    assert list(got["ts"]) == sorted(got["ts"])
    for _, row in got.iterrows():
        want = by_id[row["tx_id"]]
        assert row["ts"] == pd.Timestamp(want["at"])
        for name in ("customer_id", "merchant_category", "channel", "rule_set_version"):
            assert row[name] == want["text"], name
        # money: exactly the nearest double to the stored decimal
        assert row["amount"] == float(Decimal(want["amount"]))
        assert round(row["amount"] * 100) == int(want["amount"].replace(".", ""))
        assert np.isnan(row["lat"]) if want["lat"] is None else row["lat"] == want["lat"]
        assert (
            pd.isna(row["is_fraud"]) if want["fraud"] is None else row["is_fraud"] == want["fraud"]
        )
        assert (
            pd.isna(row["risk_score"])
            if want["score"] is None
            else row["risk_score"] == want["score"]
        )
        for name in ("terminal_id", "country", "device_id", "fraud_scenario"):
            assert pd.isna(row[name]), name
        assert row["rule_hits"] == ('{"big": 60, "é\\"x": 1.5}' if want["hits"] != "{}" else "{}")
    assert got["customer_id"].isna().sum() == 0  # '' and 'NULL' are text, never NULL

    # The CSV path over the same rows gives the same frame, dtypes included.
    pd.testing.assert_frame_equal(got, _csv_load(db_dsn, LO, HI))
    assert str(got["amount"].dtype) == "float64"
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert str(got["is_fraud"].dtype) == "boolean"


def test_money_of_many_amounts_is_exact(db_dsn):
    rng = random.Random(3)
    texts = [f"{rng.randrange(0, 10**9)}.{rng.randrange(0, 100):02d}" for _ in range(2000)]
    rows = [
        {
            "tx": f"m{i:05d}",
            "ts": f"2026-01-01 00:00:{i % 60:02d}+00",
            "at": datetime(2026, 1, 1, tzinfo=UTC),
            "card": "c",
            "text": "x",
            "amount": t,
            "lat": None,
            "fraud": None,
            "score": 1.0,
            "hits": "{}",
        }
        for i, t in enumerate(texts)
    ]
    _insert(db_dsn, rows)
    got = load_history(dsn=db_dsn).set_index("tx_id")["amount"]
    want = pd.Series([float(Decimal(t)) for t in texts], index=[r["tx"] for r in rows])
    assert (got.loc[want.index].to_numpy() == want.to_numpy()).all()
    cents = np.rint(got.loc[want.index].to_numpy() * 100).astype(np.int64)
    assert cents.sum() == sum(int(t.replace(".", "")) for t in texts)


def test_a_connection_inside_a_transaction_reads_its_own_rows(db_dsn):
    rows = _rows()[:3]
    with connect(db_dsn, autocommit=False) as conn:
        ensure_days(conn, {r["at"].date() for r in rows})
        conn.commit()
        conn.execute(
            "INSERT INTO transactions (tx_id, ts, card_id, amount) VALUES ('mine', %s, 'c', 1.25)",
            (rows[0]["ts"],),
        )
        with reader_for(conn) as reader:
            assert reader is None  # a fresh connection would not see 'mine'
        got = transactions.load(conn, LO, HI)
        conn.rollback()
    assert list(got["tx_id"]) == ["mine"]
    assert got["amount"].tolist() == [1.25]


def test_one_reader_serves_a_whole_backtest_and_holds_no_transaction(db_dsn):
    rows = _rows()
    _insert(db_dsn, rows)
    with connect(db_dsn) as conn, reader_for(conn) as reader:
        first = transactions.load(reader, LO, datetime(2026, 1, 1, tzinfo=UTC))
        second = transactions.load(reader, datetime(2026, 1, 1, tzinfo=UTC), HI)
        idle = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'"
        ).fetchone()[0]
    assert idle == 0
    assert len(first) + len(second) == len(rows)
    lo, hi = datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)
    result = backtest(RULES, lo, hi, dsn=db_dsn, warmup=False)
    assert result.rows == sum(lo <= r["at"] < hi for r in rows) > 0
    big = result.frame["amount"] > 100
    assert (result.frame.loc[big, "score"] > 0).all()
    assert (result.frame.loc[~big, "score"] == 0).all()


def test_rows_come_in_the_order_of_order_by_ts_tx_id(db_dsn):
    # Stored out of order: later days first, and ties in ts written against byte order of
    # their ids (upper case, digits, accents and a prefix of another id among them). The
    # columnar read orders on the client; it must agree with the server's ORDER BY.
    ids = ["b", "B", "a", "é", "Z", "a0", "a", "0", "~", "ab", "aB"]
    days = [datetime(2026, 5, 3, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)]
    rows = []
    for d, day in enumerate(days):
        for i, tx in enumerate(reversed(sorted(set(ids), key=str.encode))):
            at = day.replace(second=i % 2)  # two ts values per day, each shared by several ids
            rows.append(
                {
                    "tx": f"{tx}-{d}",
                    "ts": at.isoformat(),
                    "at": at,
                    "card": "c",
                    "text": tx,
                    "amount": "1.00",
                    "lat": None,
                    "fraud": None,
                    "score": 1.0,
                    "hits": "{}",
                }
            )
    _insert(db_dsn, rows)
    with connect(db_dsn) as conn:
        want = [r[0] for r in conn.execute("SELECT tx_id FROM transactions ORDER BY ts, tx_id")]
        with reader_for(conn) as reader:
            assert isinstance(reader, ArrowReader)
            got = transactions.load(reader, LO, HI)
    assert list(got["tx_id"]) == want
    assert list(got["tx_id"]) != [r["tx"] for r in rows]  # the stored order was another
    pd.testing.assert_frame_equal(got, _csv_load(db_dsn, LO, HI))
