"""The transaction schema, declared once, and the one place raw records become typed batches.

A batch is a pandas DataFrame with exactly the columns of :data:`COLUMNS`, in that order, with
these dtypes: strings as pandas ``str``, ``ts`` as ``datetime64[ns, UTC]``, numbers as
``float64``, ``is_fraud`` as nullable ``boolean``. Label columns (``is_fraud``,
``fraud_scenario``) travel with the batch for evaluation and label-aware features, but rules
cannot read them.

:func:`coerce` turns any frame of raw values (strings from a CSV, objects from JSON) into a
typed batch plus a frame of dead letters, each with its reason. It never raises on bad data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

STR = pd.StringDtype("pyarrow", na_value=np.nan)
"""The pandas ``str`` dtype of the schema's string columns (Arrow-backed, NaN for missing)."""


@dataclass(frozen=True)
class Column:
    """One column of the transaction schema."""

    name: str
    kind: str  # "str" | "timestamp" | "float" | "bool"
    required: bool
    default: object
    help: str
    label: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("tx_id", "str", True, None, "Unique transaction id (unique together with ts)."),
    Column("ts", "timestamp", True, None, "Event time of the transaction, UTC."),
    Column("card_id", "str", True, None, "Card (payment instrument) id."),
    Column("customer_id", "str", False, "card_id", "Customer id; defaults to the card id."),
    Column("terminal_id", "str", False, "unknown", "Terminal or merchant id."),
    Column("merchant_category", "str", False, "unknown", "Merchant category, e.g. grocery."),
    Column("amount", "float", True, None, "Amount in the transaction's currency, >= 0."),
    Column("currency", "str", False, "EUR", "ISO 4217 currency code."),
    Column("country", "str", False, "unknown", "ISO 3166 alpha-2 country of the terminal."),
    Column("lat", "float", False, np.nan, "Latitude of the terminal, -90..90 (missing: NaN)."),
    Column("lon", "float", False, np.nan, "Longitude of the terminal, -180..180 (missing: NaN)."),
    Column("channel", "str", False, "pos", "pos, ecom or atm."),
    Column("device_id", "str", False, "unknown", "Device or browser fingerprint id."),
    Column(
        "is_fraud", "bool", False, pd.NA, "Label: true if fraud (missing: not known).", label=True
    ),
    Column(
        "fraud_scenario", "str", False, "", "Label: simulator scenario name, or empty.", label=True
    ),
)

NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
LABELS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.label)
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)

DEAD_LETTER_COLUMNS = ("raw", "reason")

_DTYPES = {"str": "str", "float": "float64", "bool": "boolean"}


def empty_batch() -> pd.DataFrame:
    """A typed batch with no rows."""
    return coerce(pd.DataFrame({name: [] for name in REQUIRED}))[0]


def empty_dead_letters() -> pd.DataFrame:
    return pd.DataFrame({"raw": pd.Series([], dtype="str"), "reason": pd.Series([], dtype="str")})


def coerce(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed batch and dead letters from a frame of raw values.

    Missing optional columns get their documented defaults. A row whose required values are
    missing or unparseable, or whose values are out of range, becomes a dead letter with
    ``raw`` (the original record as JSON) and ``reason``; every row ends up in exactly one
    of the two outputs.
    """
    missing = [name for name in REQUIRED if name not in raw.columns]
    n = len(raw)
    if missing:
        reason = "missing required column(s): " + ", ".join(missing)
        return _typed({}, 0), _dead(raw, np.full(n, reason, dtype=object))

    reasons = np.full(n, None, dtype=object)

    def fail(mask: np.ndarray, reason: str | np.ndarray) -> None:
        new = mask & pd.isna(reasons)
        if new.any():
            reasons[new] = reason if isinstance(reason, str) else reason[new]

    out: dict[str, object] = {}
    for col in COLUMNS:
        if col.name not in raw.columns:
            continue
        values = raw[col.name]
        if col.kind == "str":
            text = _as_text(values)
            if col.required:
                fail(
                    text.isna().to_numpy() | (text.str.len() == 0).to_numpy(),
                    f"{col.name} is missing",
                )
            out[col.name] = text
        elif col.kind == "timestamp":
            ts = _as_timestamp(values)
            absent = values.isna().to_numpy()
            if not pd.api.types.is_datetime64_any_dtype(values.dtype):
                empty = (_as_text(values).str.len() == 0).fillna(True)
                absent = absent | empty.to_numpy(dtype=bool)
            fail(absent, f"{col.name} is missing")
            bad = ts.isna().to_numpy()
            fail(bad, _describe(f"{col.name} is not a timestamp", values, bad))
            out[col.name] = ts
        elif col.kind == "float":
            num = pd.to_numeric(values, errors="coerce").astype("float64")
            arr = num.to_numpy()
            unparsed = (
                np.isnan(arr)
                & values.notna().to_numpy()
                & (_as_text(values).str.len() > 0).fillna(False).to_numpy()
            )
            fail(
                unparsed | np.isinf(arr),
                _describe(f"{col.name} is not a number", values, unparsed | np.isinf(arr)),
            )
            if col.required:
                fail(np.isnan(arr), f"{col.name} is missing")
            out[col.name] = num
        elif col.kind == "bool":
            out[col.name] = _as_bool(values, fail, col.name)

    amount = out["amount"].to_numpy()  # type: ignore[union-attr]
    fail(amount < 0, "amount is negative")
    for name, limit in (("lat", 90.0), ("lon", 180.0)):
        if name in out:
            arr = out[name].to_numpy()  # type: ignore[union-attr]
            fail(np.abs(arr) > limit, f"{name} is out of range ±{limit:g}")

    bad = pd.notna(reasons)
    good_idx = np.flatnonzero(~bad)
    batch = _typed({k: v.iloc[good_idx] for k, v in out.items()}, len(good_idx))  # type: ignore[union-attr]
    dead = _dead(raw.iloc[np.flatnonzero(bad)], reasons[bad])
    return batch, dead


def _typed(columns: dict[str, pd.Series], n: int) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for col in COLUMNS:
        if col.name in columns:
            series = columns[col.name].reset_index(drop=True)
            if col.kind == "str" and not col.required:
                # A missing value in an optional column means the same as a missing column:
                # its default, so str columns never hold NA (e.g. an empty CSV cell).
                default = data["card_id"] if col.default == "card_id" else col.default
                series = series.where(series.notna(), default)
        elif isinstance(col.default, str) and col.default == "card_id":
            series = data["card_id"].copy()
        elif col.kind == "timestamp":
            series = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
        else:
            series = pd.Series([col.default] * n, dtype=_DTYPES[col.kind])
        if col.kind != "timestamp":
            series = series.astype(_DTYPES[col.kind])
        data[col.name] = series
    return pd.DataFrame(data, columns=list(NAMES))


def _dead(rows: pd.DataFrame, reasons: np.ndarray) -> pd.DataFrame:
    if len(rows) == 0:
        return empty_dead_letters()
    # Per-row JSON is fine here: only rejected rows pay for it.
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    raw = [json.dumps(r, default=str, ensure_ascii=False) for r in records]
    return pd.DataFrame(
        {"raw": pd.Series(raw, dtype="str"), "reason": pd.Series(list(reasons), dtype="str")}
    )


def _as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values):
        text = values
    elif pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        text = values.astype("str")  # ids stored as integers (Parquet): 5x faster than below
    else:
        text = values.astype(object).where(values.notna(), None)
        floats = pd.api.types.is_float_dtype(values.dtype)
        if floats:  # ids read as floats (e.g. 12.0 from a CSV with gaps) keep their integer form
            arr = values.to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):  # NaN/inf compare False: no warning wanted
                whole = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2.0**63)
            ints = np.where(whole, arr, 0.0).astype("int64").astype(str)
            text = pd.Series(np.where(whole, ints, text.to_numpy()), index=values.index)
            text = text.where(values.notna(), None)
        text = text.astype("str").where(values.notna().to_numpy(), None)
    return text.astype("str").str.strip()


_NS_MIN, _NS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


def _as_timestamp(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        ts = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        ts = _from_epoch(values.to_numpy(dtype="float64", na_value=np.nan), values.index)
    else:
        # Numbers in text (a CSV column of epochs) are epochs too; the rest is date text.
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        is_num = ~np.isnan(num)
        ts = pd.to_datetime(values.where(~is_num), utc=True, errors="coerce", format="mixed")
        if is_num.any():
            ts = _ns(ts).where(~is_num, _from_epoch(num, values.index))
    return _ns(ts)


def _ns(ts: pd.Series) -> pd.Series:
    # Other resolutions reach far beyond the ns range (years 1677..2262); such a value is
    # unparseable data, not a reason to raise.
    if ts.dtype != "datetime64[ns, UTC]":
        ts = ts.where((ts >= _NS_MIN) & (ts <= _NS_MAX)).astype("datetime64[ns, UTC]")
    return ts


def _from_epoch(arr: np.ndarray, index: pd.Index) -> pd.Series:
    """Epoch seconds, or milliseconds when the magnitude says so, decided value by value so
    the result does not depend on which other rows share the batch."""
    with np.errstate(invalid="ignore"):
        per_unit = np.where(np.abs(arr) >= 1e11, 1e6, 1e9)  # ns per ms, ns per s
        whole = np.floor(arr)
        ok = np.isfinite(arr) & (np.abs(arr * per_unit) < 9.2e18)
    whole, frac, per_unit = (np.where(ok, x, 0.0) for x in (whole, arr - whole, per_unit))
    # Integer arithmetic for the whole part keeps integral epochs exact; a float epoch near
    # today resolves ~0.2 µs, so its fraction is rounded to whole microseconds.
    ns = whole.astype("int64") * per_unit.astype("int64")
    ns += np.round(frac * per_unit / 1000).astype("int64") * 1000
    ts = pd.Series(ns.view("datetime64[ns]"), index=index).dt.tz_localize("UTC")
    return ts.where(ok)


def _as_bool(values: pd.Series, fail, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    text = _as_text(values).str.lower()
    mapped = text.map(
        {
            "1": True,
            "true": True,
            "t": True,
            "yes": True,
            "y": True,
            "0": False,
            "false": False,
            "f": False,
            "no": False,
            "n": False,
            "1.0": True,
            "0.0": False,
        }
    )
    bad = (mapped.isna() & text.notna() & (text.str.len() > 0)).to_numpy()
    fail(bad, _describe(f"{name} is not a boolean", values, bad))
    return mapped.astype("boolean")


def _describe(prefix: str, values: pd.Series, bad: np.ndarray) -> np.ndarray:
    out = np.full(len(values), prefix, dtype=object)
    if bad.any():
        shown = values[bad].astype(object).map(lambda v: f"{prefix}: {str(v)[:60]!r}")
        out[bad] = shown.to_numpy()
    return out
