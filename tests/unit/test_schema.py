"""schema.coerce: raw frames -> typed batch + dead letters, never raising on bad data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench import schema
from workbench.schema import coerce, empty_batch

EXPECTED_DTYPES = {
    "tx_id": "str",
    "ts": "datetime64[ns, UTC]",
    "card_id": "str",
    "customer_id": "str",
    "terminal_id": "str",
    "merchant_category": "str",
    "amount": "float64",
    "currency": "str",
    "country": "str",
    "lat": "float64",
    "lon": "float64",
    "channel": "str",
    "device_id": "str",
    "is_fraud": "boolean",
    "fraud_scenario": "str",
}


def raw(n: int = 1, **columns) -> pd.DataFrame:
    """A minimal valid raw frame of n rows, with some columns replaced."""
    data = {
        "tx_id": [str(i) for i in range(n)],
        "ts": ["2026-01-01T00:00:00Z"] * n,
        "card_id": ["c1"] * n,
        "amount": ["10.5"] * n,
    }
    data.update(columns)
    return pd.DataFrame(data)


def reasons(dead: pd.DataFrame) -> list[str]:
    return dead["reason"].tolist()


def test_dtypes_and_order_of_a_typed_batch():
    batch, dead = coerce(raw(3))
    assert list(batch.columns) == list(schema.NAMES)
    assert {c: str(t) for c, t in batch.dtypes.items()} == EXPECTED_DTYPES
    assert len(batch) == 3 and len(dead) == 0
    assert {c: str(t) for c, t in empty_batch().dtypes.items()} == EXPECTED_DTYPES


def test_missing_optional_columns_get_their_defaults():
    batch, _ = coerce(raw(2, card_id=["a", "b"]))
    row = batch.iloc[0]
    assert batch["customer_id"].tolist() == ["a", "b"]  # defaults to the card id
    assert (row.terminal_id, row.merchant_category, row.currency) == ("unknown", "unknown", "EUR")
    assert (row.country, row.channel, row.device_id, row.fraud_scenario) == (
        "unknown",
        "pos",
        "unknown",
        "",
    )
    assert np.isnan(row.lat) and np.isnan(row.lon) and pd.isna(row.is_fraud)


def test_missing_values_in_optional_columns_get_their_defaults_too():
    frame = raw(3, customer_id=[None, "x", None], terminal_id=["t", None, np.nan])
    frame["card_id"] = ["a", "b", "c"]
    batch, dead = coerce(frame)
    assert len(dead) == 0
    assert batch["customer_id"].tolist() == ["a", "x", "c"]
    assert batch["terminal_id"].tolist() == ["t", "unknown", "unknown"]
    assert not batch["terminal_id"].isna().any()


def test_epoch_seconds_and_milliseconds_numeric_and_text():
    when = pd.Timestamp("2023-11-14 22:13:20.123", tz="UTC")
    secs, ms = when.timestamp(), int(when.timestamp() * 1000)
    for values in ([secs, ms], [f"{secs}", str(ms)]):
        batch, dead = coerce(raw(2, ts=values))
        assert len(dead) == 0
        assert batch["ts"].tolist() == [when, when]
    # exact to the millisecond, not rounded through float nanoseconds
    batch, _ = coerce(raw(1, ts=[1_700_000_000_123]))
    assert batch["ts"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20.123", tz="UTC")


def test_epoch_unit_is_decided_per_value_not_per_batch():
    alone, _ = coerce(raw(1, ts=[1_700_000_000]))
    mixed, _ = coerce(raw(2, ts=[1_700_000_000, 1_700_000_000_000]))
    assert mixed["ts"].iloc[0] == alone["ts"].iloc[0] == mixed["ts"].iloc[1]


def test_naive_timestamps_are_utc_and_offsets_are_converted():
    text = ["2026-01-01 10:00:00", "2026-01-01T11:00:00+01:00"]
    batch, _ = coerce(raw(2, ts=text))
    assert batch["ts"].tolist() == [pd.Timestamp("2026-01-01 10:00", tz="UTC")] * 2
    naive = pd.Series(pd.to_datetime(["2026-01-01 10:00"]).as_unit("us"))
    batch, _ = coerce(raw(1, ts=naive))
    assert batch["ts"].iloc[0] == pd.Timestamp("2026-01-01 10:00", tz="UTC")
    assert str(batch["ts"].dtype) == "datetime64[ns, UTC]"


def test_timestamps_outside_the_nanosecond_range_are_dead_letters_not_errors():
    far = pd.Series(pd.to_datetime(["2500-01-01", "2026-01-01"]).as_unit("s"))
    for values in (["2500-01-01", "2026-01-01"], far, [1e16, 1.7e9]):
        batch, dead = coerce(raw(2, ts=values))
        assert len(batch) == 1 and len(dead) == 1
        assert reasons(dead)[0].startswith("ts is not a timestamp")


def test_booleans_in_several_spellings():
    spellings = ["true", "T", "yes", "Y", "1", "1.0", "False", "f", "NO", "n", "0", "", None]
    batch, dead = coerce(raw(len(spellings), is_fraud=spellings))
    assert len(dead) == 0
    assert batch["is_fraud"].tolist() == [True] * 6 + [False] * 5 + [pd.NA, pd.NA]
    for values in ([True, False], [1.0, 0.0], pd.array([True, None], dtype="boolean")):
        batch, _ = coerce(raw(2, is_fraud=values))
        assert batch["is_fraud"].tolist()[0] is True


def test_a_bad_boolean_is_a_dead_letter():
    batch, dead = coerce(raw(2, is_fraud=["maybe", "yes"]))
    assert len(batch) == 1 and reasons(dead) == ["is_fraud is not a boolean: 'maybe'"]


def test_ids_read_as_floats_keep_their_integer_form():
    batch, dead = coerce(raw(4, tx_id=[12.0, 3.5, np.nan, 7.0], card_id=[1.0, 2.0, 3.0, 1e20]))
    assert batch["tx_id"].tolist() == ["12", "3.5", "7"]
    assert batch["card_id"].tolist() == ["1", "2", "1e+20"]
    assert reasons(dead) == ["tx_id is missing"]


def test_integer_ids_become_text():
    batch, _ = coerce(raw(2, tx_id=[1, 2], card_id=np.array([10, 20], dtype="int64")))
    assert batch["tx_id"].tolist() == ["1", "2"] and batch["card_id"].tolist() == ["10", "20"]


def test_lat_lon_range():
    batch, dead = coerce(raw(4, lat=["45", "91", "", "0"], lon=["-180", "0", "1", "180.5"]))
    assert batch["lat"].tolist()[0] == 45.0 and np.isnan(batch["lat"].iloc[1])
    assert reasons(dead) == ["lat is out of range ±90", "lon is out of range ±180"]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("amount", "-1", "amount is negative"),
        ("amount", "abc", "amount is not a number: 'abc'"),
        ("amount", "inf", "amount is not a number: 'inf'"),
        ("amount", None, "amount is missing"),
        ("tx_id", "", "tx_id is missing"),
        ("card_id", None, "card_id is missing"),
        ("ts", None, "ts is missing"),
        ("ts", "yesterday-ish", "ts is not a timestamp: 'yesterday-ish'"),
        ("lat", "north", "lat is not a number: 'north'"),
    ],
)
def test_bad_values_become_dead_letters_with_reasons(column, value, reason):
    frame = raw(2)
    frame[column] = frame[column].astype(object) if column in frame else "0"
    frame.loc[1, column] = value
    batch, dead = coerce(frame)
    assert len(batch) == 1 and reasons(dead) == [reason]
    assert json.loads(dead["raw"].iloc[0])["tx_id"] == "1" or column == "tx_id"


def test_missing_required_column_makes_every_row_dead():
    batch, dead = coerce(raw(3).drop(columns=["amount"]))
    assert len(batch) == 0 and len(dead) == 3
    assert set(reasons(dead)) == {"missing required column(s): amount"}
    assert list(batch.columns) == list(schema.NAMES)


def test_counts_conserve_and_the_raw_record_is_kept():
    frame = raw(5, amount=["1", "x", "-2", "3", None], tx_id=["a", "b", "c", "d", "e"])
    batch, dead = coerce(frame)
    assert len(batch) + len(dead) == 5
    assert batch["tx_id"].tolist() == ["a", "d"]
    assert [json.loads(r)["tx_id"] for r in dead["raw"]] == ["b", "c", "e"]
    assert batch.index.tolist() == [0, 1]


def test_an_empty_frame_gives_an_empty_typed_batch():
    batch, dead = coerce(raw(0))
    assert len(batch) == 0 and len(dead) == 0
    assert {c: str(t) for c, t in batch.dtypes.items()} == EXPECTED_DTYPES


def test_amounts_parse_exactly_from_text():
    batch, dead = coerce(raw(2, amount=["0.10", "0.20"]))
    assert len(dead) == 0 and int(schema.cents(batch["amount"]).sum()) == 30
    text = ["0", "0.5", ".25", "007.10", "1.500", "+3", " 12.34 ", "1000000000.00", "-0"]
    batch, dead = coerce(raw(len(text), amount=text))
    assert len(dead) == 0
    assert schema.cents(batch["amount"]).tolist() == [
        0,
        50,
        25,
        710,
        150,
        300,
        1234,
        100_000_000_000,
        0,
    ]
    # the contract: each amount is the double nearest its decimal, so repr gives it back
    assert [repr(a) for a in batch["amount"]] == [
        "0.0",
        "0.5",
        "0.25",
        "7.1",
        "1.5",
        "3.0",
        "12.34",
        "1000000000.0",
        "0.0",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1e20", "amount is not a plain decimal: '1e20'"),
        ("1E2", "amount is not a plain decimal: '1E2'"),
        ("NaN", "amount is not a number: 'NaN'"),
        ("inf", "amount is not a number: 'inf'"),
        ("-inf", "amount is not a number: '-inf'"),
        ("1.005", "amount has more than 2 decimal places: '1.005'"),
        ("-1", "amount is negative"),
        ("-0.01", "amount is negative"),
        ("1000000000.01", "amount is over the maximum 1,000,000,000.00: '1000000000.01'"),
        ("123456789012345", "amount is over the maximum 1,000,000,000.00: '123456789012345'"),
        ("1,5", "amount is not a number: '1,5'"),
        (".", "amount is not a number: '.'"),
        ("", "amount is missing"),
        (None, "amount is missing"),
    ],
)
def test_every_refused_amount_has_its_reason(value, reason):
    batch, dead = coerce(raw(2, amount=["1.00", value]))
    assert len(batch) == 1 and reasons(dead) == [reason]


def test_numeric_amounts_only_on_the_cent_grid_and_decimals_exactly():
    from decimal import Decimal

    batch, dead = coerce(raw(5, amount=[57.16, 0.1, 1.005, float("inf"), -2.0]))
    assert schema.cents(batch["amount"]).tolist() == [5716, 10]
    assert reasons(dead) == [
        "amount has more than 2 decimal places: '1.005'",
        "amount is not a number: 'inf'",
        "amount is negative",
    ]
    batch, dead = coerce(raw(3, amount=[Decimal("1.10"), Decimal("2.345"), Decimal("1E+20")]))
    assert schema.cents(batch["amount"]).tolist() == [110]
    assert reasons(dead) == [
        "amount has more than 2 decimal places: '2.345'",
        "amount is not a plain decimal: '1E+20'",
    ]
    batch, dead = coerce(raw(2, amount=np.array([5, 2_000_000_000], dtype="int64")))
    assert schema.cents(batch["amount"]).tolist() == [500]
    assert reasons(dead) == ["amount is over the maximum 1,000,000,000.00: '2000000000'"]


def test_identifiers_bounded_and_printable():
    ok = "i" * schema.ID_MAX_LEN
    frame = raw(
        5,
        tx_id=[ok, "x" * (schema.ID_MAX_LEN + 1), "a\x00b", "ok1", "ok2"],
        channel=["pos", "pos", "pos", "e" * (schema.TEXT_MAX_LEN + 1), "po\x7fs"],
    )
    batch, dead = coerce(frame)
    assert batch["tx_id"].tolist() == [ok]
    assert reasons(dead) == [
        f"tx_id is longer than {schema.ID_MAX_LEN} characters",
        "tx_id holds a control character",
        f"channel is longer than {schema.TEXT_MAX_LEN} characters",
        "channel holds a control character",
    ]
    assert all(schema.BY_NAME[c].max_len == 128 for c in ("card_id", "customer_id", "device_id"))


def test_timestamps_outside_the_window_are_refused():
    text = ["1677-10-01", "2262-01-01", "1969-12-31T23:59:59Z", "1970-01-01", "2100-01-01"]
    batch, dead = coerce(raw(5, ts=text))
    assert len(batch) == 2
    assert reasons(dead) == [f"ts is outside 1970-01-01 .. 2100-01-01: '{t}'" for t in text[:3]]
    narrow = {
        "ts_min": pd.Timestamp("2026-01-01", tz="UTC"),
        "ts_max": pd.Timestamp("2026-06-01", tz="UTC"),
    }
    batch, dead = coerce(raw(2, ts=["2026-03-01", "2018-04-01"]), **narrow)
    assert len(batch) == 1 and reasons(dead) == [
        "ts is outside 2026-01-01 .. 2026-06-01: '2018-04-01'"
    ]


def test_dead_letters_carry_their_line_numbers_when_given():
    _batch, dead = coerce(raw(3, amount=["1", "x", "2"]), lines=np.array([7, 8, 9]))
    assert reasons(dead) == ["line 8: amount is not a number: 'x'"]
