"""schema.coerce on hostile values: the Arrow paths for ``str`` columns (what a CSV gives) agree
with the general paths (object columns, what JSON gives), and each row's fate is its own.

:func:`workbench.schema.coerce` takes shortcuts on Arrow-backed text: it strips only when a
value's first or last byte could be whitespace, looks for epochs only among ``ts`` values
without a ``:``, and casts ``lat``/``lon`` with Arrow when every value is a plain decimal.
Object columns of the same values take none of them, so they are the reference here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.schema import coerce

SPACES = ["", " ", "\t", "\u00a0", "\u2003", "\u3000", "\x1c", "\n"]

ids = st.one_of(
    st.sampled_from(["c1", "card 7", "é", "x" * 129, "a\x01b", "", "\x7f", "1.0", "-0"]),
    st.text(alphabet="ab1 .\t\u00a0\u2003\x00é", max_size=6),
)
stamps = st.sampled_from(
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01 00:00:03.496166939+00:00",
        "2026-03-01",
        "1767225600",
        "1767225600.5",
        "1767225600123",
        "-0",
        "1e9",
        "nan",
        "inf",
        "2026-13-01",
        "1677-01-01",
        "2262-06-01",
        "not a date",
        "99999999999999999999999",
        "",
        "12:00",
    ]
)
decimals = st.one_of(
    st.sampled_from(
        ["45.5", "-0.0", "-0", "0", "90", "90.0000001", "-180.0", "1e1", "nan", "inf", "", "x"]
    ),
    st.floats(-200, 200, allow_nan=False).map(repr),
    st.decimals(-200, 200, places=19, allow_nan=False).map(str),
)
amounts = st.one_of(
    st.sampled_from(["10.50", "0.10", "007.5", "1e2", "-1.00", "1.005", "", "abc", "12", "12."]),
    st.sampled_from(["1000000000.00", "1000000000.01", "9999999999.99", ".5", "0000000000.5"]),
    st.integers(0, 10**12).map(lambda c: f"{c // 100}.{c % 100:02d}"),
)
booleans = st.sampled_from(["true", " TRUE", "f", "1.0", "yes\u00a0", "", "maybe", "0"])


def padded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """A value with hostile whitespace either side, or missing."""
    pad = st.sampled_from(SPACES)
    some = st.tuples(pad, values, pad).map("".join)
    return st.one_of(some, values, st.none())


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 6))

    def column(values):
        return draw(st.lists(padded(values), min_size=n, max_size=n))

    return pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "ts": column(stamps),
            "card_id": column(ids),
            "customer_id": column(ids),
            "amount": column(amounts),
            "lat": column(decimals),
            "lon": column(decimals),
            "is_fraud": column(booleans),
            "fraud_scenario": column(ids),
        }
    )


def same(
    got: tuple[pd.DataFrame, pd.DataFrame], want: tuple[pd.DataFrame, pd.DataFrame], signs=True
):
    for a, b in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        for name in a.columns:
            if signs and a[name].dtype == "float64":  # -0.0 == 0.0: the sign must match too
                assert np.array_equal(np.signbit(a[name]), np.signbit(b[name])), name


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_arrow_text_columns_give_what_object_columns_give(raw):
    same(coerce(raw.astype("str")), coerce(raw.astype(object)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_each_row_is_typed_or_refused_as_it_would_be_alone(raw):
    text = raw.astype("str")
    batch, dead = coerce(text, lines=np.arange(len(text)))
    assert len(batch) + len(dead) == len(text)
    kept, refused = [], []
    for i in range(len(text)):
        one, one_dead = coerce(text.iloc[[i]], lines=np.array([i]))
        kept.append(one)
        refused.append(one_dead)
    alone = pd.concat(kept, ignore_index=True)
    # Signs aside: pandas reads "-0" as +0.0 in a column of integers, -0.0 among decimals.
    same((batch, dead), (alone.astype(batch.dtypes.to_dict()), _dead(refused, dead)), signs=False)


def _dead(parts: list[pd.DataFrame], like: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True).astype(like.dtypes.to_dict())


def test_padding_is_stripped_like_str_strip_ascii_or_unicode():
    pads = ["c1", " c1", "c1\t", "\u00a0c1\u2003", "\u3000c1", "c\u00a01", "c1\x1c"]

    def card_ids(values: list[str]) -> list[str]:
        batch, dead = coerce(
            pd.DataFrame(
                {
                    "tx_id": [str(i) for i in range(len(values))],
                    "ts": ["2026-01-01"] * len(values),
                    "card_id": pd.Series(values, dtype="str"),
                    "amount": ["1.00"] * len(values),
                }
            )
        )
        assert dead.empty
        return batch["card_id"].tolist()

    assert card_ids(pads) == [p.strip() for p in pads]
    # Alone in its batch too: whether to strip is decided per batch, so each case on its own.
    assert [card_ids([p])[0] for p in pads] == [p.strip() for p in pads]


def test_epochs_and_dates_in_one_text_column_each_parse():
    raw = pd.DataFrame(
        {
            "tx_id": ["a", "b", "c", "d"],
            "ts": pd.Series(["1767225600", "2026-01-01T00:00:00Z", " 1767225600000 ", "1e9"]),
            "card_id": ["c"] * 4,
            "amount": ["1.00"] * 4,
        }
    ).astype("str")
    batch, dead = coerce(raw)
    assert dead.empty
    want = ["2026-01-01", "2026-01-01", "2026-01-01", "2001-09-09 01:46:40"]
    assert batch["ts"].tolist() == [pd.Timestamp(w, tz="UTC") for w in want]


def test_lat_lon_text_any_form_same_number_and_hostile_ones_refused():
    lat = ["40.97326535822227", "-0.0", " 12.5", "1e1", "-7", "lots", "1.2.3", "", None]
    raw = pd.DataFrame(
        {
            "tx_id": [str(i) for i in range(len(lat))],
            "ts": ["2026-01-01"] * len(lat),
            "card_id": ["c"] * len(lat),
            "amount": ["1.00"] * len(lat),
            "lat": lat,
        }
    ).astype("str")
    batch, dead = coerce(raw)
    got = batch["lat"].tolist()
    assert got[:5] == [40.97326535822227, -0.0, 12.5, 10.0, -7.0]
    assert np.signbit(got[1])
    assert np.isnan(got[5:]).all()  # "" and None: missing, not refused
    assert dead["reason"].tolist() == [
        "lat is not a number: 'lots'",
        "lat is not a number: '1.2.3'",
    ]
