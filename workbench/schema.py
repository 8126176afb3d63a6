"""The transaction schema, declared once, and the one place raw records become typed batches.

A batch is a pandas DataFrame with exactly the columns of :data:`COLUMNS`, in that order, with
these dtypes: strings as pandas ``str``, ``ts`` as ``datetime64[ns, UTC]``, numbers as
``float64``, ``is_fraud`` as nullable ``boolean``. Label columns (``is_fraud``,
``fraud_scenario``) travel with the batch for evaluation and label-aware features, but rules
cannot read them.

:func:`coerce` turns any frame of raw values (strings from a CSV, objects from JSON) into a
typed batch plus a frame of dead letters, each with its reason. It never raises on bad data.

What a typed batch guarantees (checked by :func:`coerce`, vectorized):

* text columns hold no control character (``\\x00``-``\\x1f``, ``\\x7f``) and at most
  :attr:`Column.max_len` characters (:data:`ID_MAX_LEN` for the identifiers, :data:`TEXT_MAX_LEN`
  for the other text columns);
* ``ts`` lies inside the configured window (settings ``ts_min`` .. ``ts_max``, by default
  :data:`TS_MIN` .. :data:`TS_MAX`), so no absurd year ever reaches a partition;
* **money contract**: ``amount`` is ``float64`` and is always the nearest double to a whole
  number of cents in ``0 .. MAX_AMOUNT``. So ``rint(amount * 100)`` is the exact integer
  number of cents (:func:`cents`), and the shortest repr of the double is the exact decimal
  (storage writes it as ``numeric``). Text is parsed to integer cents without passing through
  binary floating point (``"0.10"`` + ``"0.20"`` is exactly 30 cents); exponents (``1e20``),
  ``NaN``, ``inf``, negative amounts, more than 2 decimal places and amounts over
  :data:`MAX_AMOUNT` are refused. A float input (Parquet) is accepted only on the cent grid
  (``round(x * 100) / 100 == x``); ``Decimal`` input is read from its exact text.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    max_len: int = 64
    """Longest accepted text, in characters (text columns only)."""


ID_MAX_LEN = 128
"""Longest identifier (tx_id, card_id, customer_id, terminal_id, device_id), in characters."""
TEXT_MAX_LEN = 64
"""Longest value of the other text columns, in characters."""
MAX_AMOUNT = 1_000_000_000.00
"""Largest accepted amount (in the transaction's currency); amounts are 0 .. MAX_AMOUNT."""
MAX_CENTS = 100_000_000_000
TS_MIN = pd.Timestamp("1970-01-01", tz="UTC")
"""Default earliest accepted ``ts`` (setting ``ts_min``)."""
TS_MAX = pd.Timestamp("2100-01-01", tz="UTC")
"""Default latest accepted ``ts`` (setting ``ts_max``)."""

_ID = ID_MAX_LEN

COLUMNS: tuple[Column, ...] = (
    Column(
        "tx_id", "str", True, None, "Unique transaction id (at most 128 characters).", max_len=_ID
    ),
    Column("ts", "timestamp", True, None, "Event time of the transaction, UTC."),
    Column(
        "card_id", "str", True, None, "Card (payment instrument) id (<= 128 chars).", max_len=_ID
    ),
    Column(
        "customer_id",
        "str",
        False,
        "card_id",
        "Customer id (<= 128 chars); defaults to the card id.",
        max_len=_ID,
    ),
    Column(
        "terminal_id",
        "str",
        False,
        "unknown",
        "Terminal or merchant id (<= 128 chars).",
        max_len=_ID,
    ),
    Column(
        "merchant_category",
        "str",
        False,
        "unknown",
        "Merchant category, e.g. grocery (<= 64 chars).",
    ),
    Column(
        "amount",
        "float",
        True,
        None,
        "Amount in the transaction's currency, 0 .. 1,000,000,000.00, at most 2 decimals.",
    ),
    Column("currency", "str", False, "EUR", "ISO 4217 currency code (<= 64 chars)."),
    Column(
        "country",
        "str",
        False,
        "unknown",
        "ISO 3166 alpha-2 country of the terminal (<= 64 chars).",
    ),
    Column("lat", "float", False, np.nan, "Latitude of the terminal, -90..90 (missing: NaN)."),
    Column("lon", "float", False, np.nan, "Longitude of the terminal, -180..180 (missing: NaN)."),
    Column("channel", "str", False, "pos", "pos, ecom or atm (<= 64 chars)."),
    Column(
        "device_id",
        "str",
        False,
        "unknown",
        "Device or browser fingerprint id (<= 128 chars).",
        max_len=_ID,
    ),
    Column(
        "is_fraud", "bool", False, pd.NA, "Label: true if fraud (missing: not known).", label=True
    ),
    Column(
        "fraud_scenario",
        "str",
        False,
        "",
        "Label: simulator scenario name, or empty (<= 64 chars).",
        label=True,
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
    return _no_dead_letters().copy()


@functools.cache
def _no_dead_letters() -> pd.DataFrame:
    # Built once: most batches have no dead letter, and building it costs ~1 ms a batch.
    return pd.DataFrame({"raw": pd.Series([], dtype="str"), "reason": pd.Series([], dtype="str")})


def coerce(
    raw: pd.DataFrame,
    *,
    ts_min: pd.Timestamp = TS_MIN,
    ts_max: pd.Timestamp = TS_MAX,
    lines: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed batch and dead letters from a frame of raw values.

    Missing optional columns get their documented defaults. A row whose required values are
    missing or unparseable, or whose values are out of range (see the module docstring),
    becomes a dead letter with ``raw`` (the original record as JSON) and ``reason``; every
    row ends up in exactly one of the two outputs. ``ts_min`` .. ``ts_max`` is the accepted
    time window (inclusive); ``lines`` (the source line number of each row), when given,
    prefixes the reason of each refused row (``line 12: ...``), so a dead letter says where
    its record came from.
    """
    missing = [name for name in REQUIRED if name not in raw.columns]
    n = len(raw)
    if missing:
        reason = "missing required column(s): " + ", ".join(missing)
        return _typed({}, 0, None), _dead(raw, np.full(n, reason, dtype=object), lines)

    reasons = np.full(n, None, dtype=object)
    refused = np.zeros(n, dtype=bool)

    def fail(mask: np.ndarray, reason: str | np.ndarray, shown: pd.Series | None = None) -> None:
        """Refuse the rows of ``mask`` not refused yet; ``shown``: quote each row's value."""
        new = mask & ~refused
        if new.any():
            if shown is not None:
                reason = _describe(str(reason), shown, new)
            reasons[new] = reason if isinstance(reason, str) else reason[new]
            refused[new] = True

    out: dict[str, object] = {}
    for col in COLUMNS:
        if col.name not in raw.columns:
            continue
        values = raw[col.name]
        if col.kind == "str":
            text = _text(values)
            if col.required:
                fail(_blank(text), f"{col.name} is missing")
            # Bounded, printable identifiers: a 3 KB card_id makes PostgreSQL refuse the
            # whole batch (index row size), a control character breaks logs and CSV exports.
            too_long, ctrl = _text_faults(text, col.max_len)
            fail(too_long, f"{col.name} is longer than {col.max_len} characters")
            fail(ctrl, f"{col.name} holds a control character")
            out[col.name] = text
        elif col.kind == "timestamp":
            ts = _as_timestamp(values)
            absent = values.isna().to_numpy()
            if not pd.api.types.is_datetime64_any_dtype(values.dtype):
                absent = absent | _blank(_text(values))
            fail(absent, f"{col.name} is missing")
            bad = ts.isna().to_numpy()
            fail(bad, f"{col.name} is not a timestamp", values)
            outside = ((ts < ts_min) | (ts > ts_max)).fillna(False).to_numpy(dtype=bool)
            fail(outside, f"{col.name} is outside {_when(ts_min)} .. {_when(ts_max)}", values)
            out[col.name] = ts.array
        elif col.name == "amount":
            amount, why = _as_amount(values)
            fail(pd.notna(why), why)
            fail(np.isnan(amount), "amount is missing")
            out[col.name] = amount
        elif col.kind == "float":
            arr, unparsed = _as_float(values)
            fail(unparsed | np.isinf(arr), f"{col.name} is not a number", values)
            if col.required:
                fail(np.isnan(arr), f"{col.name} is missing")
            out[col.name] = arr
        elif col.kind == "bool":
            out[col.name] = _as_bool(values, fail, col.name)

    for name, limit in (("lat", 90.0), ("lon", 180.0)):
        if name in out:
            with np.errstate(invalid="ignore"):
                fail(np.abs(out[name]) > limit, f"{name} is out of range ±{limit:g}")  # type: ignore[arg-type]

    good_idx = None if not refused.any() else np.flatnonzero(~refused)
    batch = _typed(out, n if good_idx is None else len(good_idx), good_idx)
    where = None if lines is None else np.asarray(lines)[refused]
    dead = _dead(raw.iloc[np.flatnonzero(refused)], reasons[refused], where)
    return batch, dead


def cents(amount: pd.Series | np.ndarray) -> np.ndarray:
    """Exact integer cents of typed amounts (see the money contract in the module docstring).

    >>> batch, _ = coerce(pd.DataFrame({"tx_id": ["a", "b"], "ts": [1.7e9, 1.7e9],
    ...                                 "card_id": ["c", "c"], "amount": ["0.10", "0.20"]}))
    >>> int(cents(batch["amount"]).sum())
    30
    """
    return np.rint(np.asarray(amount, dtype="float64") * 100).astype("int64")


_CONTROL = r"[\x00-\x1f\x7f]"
_DECIMAL = r"^(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<frac>[0-9]*))?$"


def _as_amount(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Amounts (NaN where refused or missing) and, per row, ``None`` or the reason refused.

    Text goes digits -> integer cents -> ``cents / 100``; IEEE division rounds correctly, so
    the result is the nearest double to the decimal, never a float parse's neighbour.
    """
    n = len(values)
    why = np.full(n, None, dtype=object)
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        values, dtype = values.astype(object), np.dtype(object)
    if pd.api.types.is_integer_dtype(dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            units = np.where(np.abs(arr) <= MAX_AMOUNT, arr, 0.0)
        cents_ = np.where(np.isnan(arr), np.nan, units * 100)
        sign = np.sign(np.nan_to_num(arr))
        over = np.nan_to_num(arr) > MAX_AMOUNT
        off_grid = np.zeros(n, dtype=bool)
        unparsed = np.zeros(n, dtype=bool)
    elif pd.api.types.is_float_dtype(dtype):
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(arr)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint(arr * 100)
            # A float is accepted only when it is the double nearest its whole number of cents.
            off_grid = finite & (scaled / 100 != arr)
        unparsed = ~finite & ~np.isnan(arr)
        sign = np.sign(np.where(finite, arr, 0.0))
        over = finite & (arr > MAX_AMOUNT)
        cents_ = np.where(finite, scaled, np.nan)
    else:
        arr_text = _text(values)
        plain = _plain_amounts(arr_text)
        if plain is not None:
            return plain, why
        parts = pc.extract_regex(arr_text, _DECIMAL)
        whole_raw = pc.fill_null(parts.field("whole"), "")
        frac_raw = pc.fill_null(parts.field("frac"), "")
        whole = pc.utf8_ltrim(whole_raw, "0")
        frac = pc.utf8_rtrim(frac_raw, "0")  # trailing zeros are no extra precision
        w_len = _np(pc.utf8_length(whole), 0)
        f_len = _np(pc.utf8_length(frac), 0)
        digits = _np(pc.utf8_length(whole_raw), 0) + _np(pc.utf8_length(frac_raw), 0)
        present = _np(pc.utf8_length(arr_text), 0) > 0
        matched = _np(parts.is_valid(), False) & present & (digits > 0)
        over = matched & (w_len > 10)
        off_grid = matched & ~over & (f_len > 2)
        ok = matched & ~over & ~off_grid
        whole_ok = pc.if_else(pa.array(ok & (w_len > 0)), whole, "0")
        frac_ok = pc.utf8_rpad(pc.if_else(pa.array(ok), frac, ""), 2, "0")
        cents_int = _np(pc.cast(whole_ok, pa.int64()), 0) * 100 + _np(
            pc.cast(frac_ok, pa.int64()), 0
        )
        over |= ok & (cents_int > MAX_CENTS)
        negative = _np(pc.equal(parts.field("sign"), "-"), False)
        sign = np.where(negative & (cents_int > 0), -1.0, 1.0)
        cents_ = np.where(ok, cents_int, np.nan).astype("float64")
        unparsed = present & ~matched
        if unparsed.any():
            # Only for rows already refused: say whether it was a number at all.
            shown = arr_text.filter(pa.array(unparsed)).to_numpy(zero_copy_only=False)
            num = pd.to_numeric(pd.Series(shown), errors="coerce").to_numpy(dtype="float64")
            plain = np.full(n, False)
            plain[np.flatnonzero(unparsed)[np.isfinite(num)]] = True
            _mark(why, plain, "amount is not a plain decimal", values)
            unparsed &= ~plain
    _mark(why, unparsed, "amount is not a number", values)
    _mark(why, sign < 0, "amount is negative", None)
    _mark(why, over, f"amount is over the maximum {MAX_AMOUNT:,.2f}", values)
    _mark(why, off_grid, "amount has more than 2 decimal places", values)
    refused = pd.notna(why)
    return np.where(refused, np.nan, cents_ / 100).astype("float64"), why


_PLAIN_AMOUNT = r"^[0-9]{1,10}(?:\.[0-9]{1,2})?$"


def _plain_amounts(text: pa.Array) -> np.ndarray | None:
    """Amounts (NaN where missing) when every value given is digits with at most 2 decimals and
    at most :data:`MAX_AMOUNT` (what a CSV export holds), else ``None``: the full parse.

    Below 1e10 a double is within 2e-6 of the decimal, so ``rint(x * 100)`` is its exact
    number of cents, and ``cents / 100`` is what the full parse gives.
    """
    filled = _np(pc.greater(pc.binary_length(text), 0), False)
    given = text.filter(pa.array(filled))
    if pc.all(pc.match_substring_regex(given, _PLAIN_AMOUNT)).as_py() is False:
        return None
    cents_ = np.rint(pc.cast(given, pa.float64()).to_numpy() * 100)
    if (cents_ > MAX_CENTS).any():
        return None
    amount = np.full(len(text), np.nan)
    amount[filled] = cents_ / 100
    return amount


def _arrow(text: pd.Series) -> pa.Array:
    """The Arrow string array behind a text series (no copy for Arrow-backed ``str``)."""
    arr = pa.array(text, type=pa.large_string(), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _np(arr: pa.Array, fill: object) -> np.ndarray:
    return pc.fill_null(arr, fill).to_numpy(zero_copy_only=False)


def _text_faults(text: pd.Series, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: longer than ``max_len`` characters; holds a control character."""
    arr = _arrow(text)
    n = len(arr)
    offsets, data = arr.buffers()[1], arr.buffers()[2]
    no = np.zeros(n, dtype=bool)
    if data is None:
        return no, no
    # Bytes first, one pass over the column: characters never outnumber bytes, and a control
    # character is one byte below 0x20 or 0x7f; most batches stop here.
    starts = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    raw = np.frombuffer(data, dtype=np.uint8)[starts[0] : starts[-1]]
    too_long = no
    if n and int(np.diff(starts).max()) > max_len:
        too_long = _np(pc.greater(pc.utf8_length(arr), max_len), False)
    ctrl = no
    if ((raw < 0x20) | (raw == 0x7F)).any():
        ctrl = _np(pc.match_substring_regex(arr, _CONTROL), False)
    return too_long, ctrl


def _mark(why: np.ndarray, mask: np.ndarray, prefix: str, values: pd.Series | None) -> None:
    new = mask & pd.isna(why)
    if new.any():
        why[new] = prefix if values is None else _describe(prefix, values, new)[new]


def _when(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def _typed(columns: dict[str, object], n: int, idx: np.ndarray | None) -> pd.DataFrame:
    """The batch from the parsed columns (Arrow text, numpy numbers, pandas arrays), keeping
    the rows ``idx`` (all when ``None``); absent optional columns get their defaults."""
    data: dict[str, pd.Series] = {}
    texts: dict[str, pa.Array] = {}
    for col in COLUMNS:
        if col.name in columns:
            values = columns[col.name]
            if idx is not None:
                values = values.take(pa.array(idx) if isinstance(values, pa.Array) else idx)  # type: ignore[union-attr]
            if col.kind == "str":
                if not col.required and values.null_count:  # type: ignore[union-attr]
                    # A missing value in an optional column means the same as a missing
                    # column: its default, so str columns never hold NA (an empty CSV cell).
                    default = texts["card_id"] if col.default == "card_id" else col.default
                    values = pc.coalesce(values, default)
                texts[col.name] = values  # type: ignore[assignment]
                series = pd.Series(pd.arrays.ArrowStringArray(values, dtype=STR), copy=False)
            else:
                series = pd.Series(values, dtype=_DTYPES.get(col.kind), copy=False)
        elif isinstance(col.default, str) and col.default == "card_id":
            series = data["card_id"].copy()
        elif col.kind == "timestamp":
            series = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
        else:
            series = pd.Series([col.default] * n, dtype=_DTYPES[col.kind])
        data[col.name] = series
    return pd.DataFrame(data, columns=list(NAMES))


def _dead(rows: pd.DataFrame, reasons: np.ndarray, lines: np.ndarray | None = None) -> pd.DataFrame:
    if len(rows) == 0:
        return empty_dead_letters()
    if lines is not None:
        reasons = [f"line {n}: {r}" for n, r in zip(lines, reasons, strict=True)]
    # Per-row JSON is fine here: only rejected rows pay for it.
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    raw = [json.dumps(r, default=str, ensure_ascii=False) for r in records]
    return pd.DataFrame(
        {"raw": pd.Series(raw, dtype="str"), "reason": pd.Series(list(reasons), dtype="str")}
    )


def _text(values: pd.Series) -> pa.Array:
    """Values as stripped Arrow text (``large_string``, null where missing)."""
    arr = _arrow(values if values.dtype == STR else _as_text(values))
    return pc.utf8_trim_whitespace(arr) if _untrimmed(arr) else arr


def _untrimmed(arr: pa.Array) -> bool:
    """Whether stripping could change a value: its first or last byte is ASCII whitespace or
    control (<= 0x20), or not ASCII (maybe Unicode whitespace). Most columns have none, and
    looking at two bytes a value is cheaper than trimming it."""
    offsets, data = arr.buffers()[1], arr.buffers()[2]
    if data is None or len(arr) == 0:
        return False
    bounds = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    lo, hi = bounds[:-1], bounds[1:]
    filled = hi > lo
    raw = np.frombuffer(data, dtype=np.uint8)
    edges = np.concatenate((raw[lo[filled]], raw[hi[filled] - 1]))
    return bool(((edges <= 0x20) | (edges >= 0x80)).any())


def _blank(text: pa.Array) -> np.ndarray:
    """Per row: missing or empty."""
    return _np(pc.equal(pc.binary_length(text), 0), True)


def _as_text(values: pd.Series) -> pd.Series:
    """Values as ``str``, unstripped (see :func:`_text`)."""
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
    return text.astype("str")


_NS_MIN, _NS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


def _as_timestamp(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        ts = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        ts = _from_epoch(values.to_numpy(dtype="float64", na_value=np.nan), values.index)
    else:
        # Numbers in text (a CSV column of epochs) are epochs too; the rest is date text.
        num = _epochs(values)
        is_num = ~np.isnan(num)
        text = values.where(~is_num) if is_num.any() else values
        # ISO 8601 (what the simulator and most exports write) parses vectorized; only the
        # values it refuses go through the slow per-value "mixed" parser.
        ts = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        retry = (ts.isna() & text.notna()).to_numpy(dtype=bool)
        if retry.any():
            again = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
            ts = _ns(ts).where(~retry, _ns(again).reindex(ts.index))
        if is_num.any():
            ts = _ns(ts).where(~is_num, _from_epoch(num, values.index))
    return _ns(ts)


def _epochs(values: pd.Series) -> np.ndarray:
    """Each value as a number (NaN where it is none). No number holds a ':', so date text
    (the common case) skips the costly per-value parse."""
    if values.dtype != STR:
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    maybe = _np(pc.invert(pc.match_substring(_arrow(values), ":")), False)
    num = np.full(len(values), np.nan)
    if maybe.any():
        some = pd.to_numeric(values[maybe], errors="coerce")
        num[maybe] = some.to_numpy(dtype="float64", na_value=np.nan)
    return num


# Both parsers agree on these (correctly rounded); a column holding anything else (ints, whose
# -0 loses its sign in to_numeric, exponents, spaces, words) takes the general parse.
_PLAIN_FLOAT = r"^-?[0-9]{1,10}\.[0-9]{1,19}$"


def _as_float(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers (NaN where missing or unparsed) and, per row, whether a value was unparsed."""
    if values.dtype == STR:
        arr = _arrow(values)
        filled = _np(pc.greater(pc.binary_length(arr), 0), False)
        given = arr.filter(pa.array(filled))
        if pc.all(pc.match_substring_regex(given, _PLAIN_FLOAT)).as_py() is not False:
            num = np.full(len(arr), np.nan)
            num[filled] = pc.cast(given, pa.float64()).to_numpy()
            return num, np.zeros(len(arr), dtype=bool)
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    unparsed = np.isnan(num) & values.notna().to_numpy() & ~_blank(_text(values))
    return num, unparsed


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
        frac = arr - whole  # inf - inf: NaN, dropped with ok just below
    whole, frac, per_unit = (np.where(ok, x, 0.0) for x in (whole, frac, per_unit))
    # Integer arithmetic for the whole part keeps integral epochs exact; a float epoch near
    # today resolves ~0.2 µs, so its fraction is rounded to whole microseconds.
    ns = whole.astype("int64") * per_unit.astype("int64")
    ns += np.round(frac * per_unit / 1000).astype("int64") * 1000
    ts = pd.Series(ns.view("datetime64[ns]"), index=index).dt.tz_localize("UTC")
    return ts.where(ok)


_BOOLS = {"1": True, "true": True, "t": True, "yes": True, "y": True, "1.0": True}
_BOOLS |= {"0": False, "false": False, "f": False, "no": False, "n": False, "0.0": False}
_BOOL_KEYS = pa.array(list(_BOOLS), type=pa.large_string())
_BOOL_VALUES = np.array(list(_BOOLS.values()))


def _as_bool(values: pd.Series, fail, name: str) -> pd.arrays.BooleanArray:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean").array
    text = _text(values)
    at = pc.index_in(pc.utf8_lower(text), value_set=_BOOL_KEYS)
    known = _np(pc.is_valid(at), False)
    fail(~known & ~_blank(text), f"{name} is not a boolean", values)
    mapped = _BOOL_VALUES[_np(at, 0)]
    return pd.arrays.BooleanArray(mapped & known, ~known)


def _describe(prefix: str, values: pd.Series, bad: np.ndarray) -> np.ndarray:
    out = np.full(len(values), prefix, dtype=object)
    if bad.any():
        shown = values[bad].astype(object).map(lambda v: f"{prefix}: {str(v)[:60]!r}")
        out[bad] = shown.to_numpy()
    return out
