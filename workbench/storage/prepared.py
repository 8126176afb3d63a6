"""A scored batch in the forms the batch writer sends: COPY payloads built vectorized.

:class:`PreparedBatch` turns a :class:`~workbench.scoring.result.ScoredBatch` into what
:mod:`workbench.storage.writer` writes -- the direct path's COPY payloads (PostgreSQL's binary
format from :mod:`workbench.storage.binary_copy`, or CSV when an amount is off the cent grid),
the staging path's, the dead letters', the evidence's and the challenger's -- each built on first
use, with no per-row Python, so a pipeline can prepare the next batch while the previous one is
being written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from workbench import bands
from workbench.errors import StorageError
from workbench.schema import COLUMNS, NAMES
from workbench.scoring.result import ScoredBatch
from workbench.storage import binary_copy
from workbench.storage.tables import names, transactions

SCORE_COLUMNS = ("risk_score", "band", "rule_set_version")
# Staged ts is epoch microseconds: exact, and far cheaper to parse than timestamp text.
STAGE_COLUMNS = ("pos", *(("ts_us" if n == "ts" else n) for n in NAMES), *SCORE_COLUMNS)

# The direct path's COPY columns (ts as text): every stored column but the defaulted one.
DIRECT_COLUMNS = tuple(n for n in names(transactions) if n != "stored_at")
ALERT_COLUMNS = (
    "tx_id", "ts", "card_id", "amount", "currency", "risk_score", "band", "rule_hits",
    "rule_set_version", "alertable",
)  # fmt: skip
# The wire kind of each direct column, and of the alert stage's (its DDL: alerting.STAGE_DDL).
_DIRECT_KINDS = {n: binary_copy.kind_of(transactions.c[n].type) for n in DIRECT_COLUMNS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAT = np.iinfo(np.int64).min


class PreparedBatch:
    """A scored batch in the forms :func:`write_batch` sends, each built (vectorized) on first
    use. :meth:`build` makes the usual path's COPY payloads up front, so a pipeline can prepare
    the next batch while the previous one is being written (off the write's critical path).
    Raises :class:`ConfigError` for an unknown ``alert_min_band``."""

    def __init__(
        self,
        scored: ScoredBatch,
        *,
        alert_min_band: bands.Band | str | None = bands.Band.HIGH,
        source: str = "",
        worker: str = "",
        binary: bool = True,
    ) -> None:
        self.scored = scored
        # False: the direct path's COPYs as CSV, as before binary COPY (kept for comparison)
        self.binary = binary
        self.frame = scored.frame
        self.alert_min_band = alert_min_band
        self.alert_rank = bands.alert_rank(alert_min_band)
        self.keep_rank = min(self.alert_rank or len(bands.LABELS), len(bands.LABELS))
        self.source, self.worker = source, worker
        # A partitioned source's partitions owned and messages behind (health only)
        self.partitions: list[int] | None = None
        self.lag: int | None = None
        if len(scored.hits):
            _check_hit_rows(scored.hits, len(self.frame))

    def build(self) -> PreparedBatch:
        """Build the direct path's payloads now (CSV of the rows, of the alert candidates,
        of the dead letters); returns self."""
        if self.direct_ok:
            _ = self.direct_tx, self.direct_ids, self.direct_alert, self._summary
        _ = self.days, self.dead_csv, self.rule_hit_counts, self.evidence_csv, self.shadow_csv
        return self

    def like(self, scored: ScoredBatch) -> PreparedBatch:
        """Another batch prepared with the same alert band, source and worker."""
        return PreparedBatch(
            scored,
            alert_min_band=self.alert_min_band,
            source=self.source,
            worker=self.worker,
            binary=self.binary,
        )

    @cached_property
    def days(self) -> list:
        return _days(self.micros)

    @cached_property
    def dead_csv(self) -> pa.Buffer | None:
        dead = self.scored.dead
        return _csv(_dead_table(dead, self.source, self.worker)) if len(dead) else None

    @cached_property
    def evidence_csv(self) -> pa.Buffer | None:
        """The evidence long frame with each row's tx_id and ts (epoch us), or None."""
        found = self.scored.evidence
        if found is None or not found.num_rows or not len(self.frame):
            return None
        at = found.column("row").to_numpy()
        table = pa.table(
            {
                "tx_id": _arrow(self.frame["tx_id"]).take(pa.array(at)),
                "ts_us": pa.array(self.micros[at]),
                "rule_id": found.column("rule_id"),
                "name": found.column("name"),
                "value": found.column("value"),
            }
        )
        return _csv(table)

    @cached_property
    def shadow_csv(self) -> pa.Buffer | None:
        """The challenger's scores of the rows (``shadow_scores`` columns), or None."""
        done = self.scored.shadow
        if done is None or not len(self.frame):
            return None
        n = len(self.frame)
        hits = _rule_hits_json(done.hits, n)
        if hits is None:  # an id with a control character: the stored text, row by row
            hits = pa.array(_rule_hits_rows(done.hits, n))
        # the tx_id text the rows' own payload made already, when it has one
        tx_id = self.tx_ids
        table = pa.table(
            {
                "tx_id": tx_id,
                "ts": self.ts_text,
                "risk_score": _arrow(done.scores["risk_score"]),
                "band": _arrow(done.scores["band"]),
                "rule_hits": hits,
                "rule_set_version": _arrow(done.scores["rule_set_version"]),
            }
        )
        return _csv(table)

    # -- staging path -------------------------------------------------------------------------
    @cached_property
    def stage_tx_csv(self) -> pa.Buffer | None:
        return _csv(_tx_table(self.frame)) if len(self.frame) else None

    @cached_property
    def stage_hits_csv(self) -> pa.Buffer | None:
        return _csv(_hits_table(self.scored.hits)) if len(self.scored.hits) else None

    # -- direct path --------------------------------------------------------------------------
    @cached_property
    def micros(self) -> np.ndarray:
        return _epoch_us(self.frame["ts"])

    @cached_property
    def rule_hits(self) -> pa.Array | None:
        """``rule_hits`` JSON text per row; None when some hit cannot be written as JSON."""
        return _rule_hits_json(self.scored.hits, len(self.frame))

    @property
    def direct_ok(self) -> bool:
        return len(self.frame) > 0 and self.rule_hits is not None

    @cached_property
    def ranks(self) -> np.ndarray:
        """1-based rank of each row's band in bands.LABELS (0: no band), like ``array_position``."""
        band = _arrow(self.frame["band"])
        rank = pc.index_in(band, value_set=pa.array(bands.LABELS)).to_numpy(zero_copy_only=False)
        return np.nan_to_num(rank, nan=-1).astype(np.int64) + 1

    @cached_property
    def ts_text(self) -> pa.Array:
        # Naive UTC text plus "Z": pyarrow formats a zoned timestamp ~40x slower.
        naive = pa.array(self.micros, pa.timestamp("us")).cast(pa.string())
        return pc.binary_join_element_wise(naive, "Z", "")

    @cached_property
    def tx_ids(self) -> pa.Array:
        return _arrow(self.frame["tx_id"])

    def _column(self, name: str) -> pa.Array:
        if name == "tx_id":
            return self.tx_ids
        if name == "rule_hits":
            return self.rule_hits
        return _arrow(self.frame[name])

    @cached_property
    def direct_table(self) -> pa.Table:
        arrays = [self.ts_text if n == "ts" else self._column(n) for n in DIRECT_COLUMNS]
        return pa.Table.from_arrays(arrays, names=list(DIRECT_COLUMNS))

    @cached_property
    def direct_fields(self) -> dict[str, binary_copy.Field] | None:
        """The direct columns as binary COPY fields; None when they cannot be sent exactly
        that way (an amount off the cent grid: its text, rounded by the server, is sent)."""
        if not self.binary:
            return None
        fields: dict[str, binary_copy.Field] = {}
        for name, kind in _DIRECT_KINDS.items():
            if kind in ("text", "jsonb"):
                fields[name] = binary_copy.Field(kind, self._column(name))
                continue
            series = self.frame[name]
            if kind == "timestamptz":
                fields[name] = binary_copy.Field(kind, self.micros, self.micros != _NAT)
            elif kind == "numeric":
                cents = binary_copy.cents_exact(_floats(series))
                if cents is None:
                    return None
                fields[name] = binary_copy.Field(kind, cents, series.notna().to_numpy())
            elif kind == "bool":
                flags = series.astype("boolean")
                values = flags.to_numpy(dtype=bool, na_value=False)
                fields[name] = binary_copy.Field(kind, values, flags.notna().to_numpy())
            else:  # float8: NaN is NULL, as in the CSV
                fields[name] = binary_copy.Field(kind, _floats(series))
        return fields

    @cached_property
    def direct_tx(self) -> tuple[bytes | pa.Buffer, str]:
        """The rows' COPY payload and its format (``binary`` or ``csv``)."""
        fields = self.direct_fields
        if fields is None:
            return _csv(self.direct_table), "csv"
        return binary_copy.encode(list(fields.values()), len(self.frame)), "binary"

    @cached_property
    def direct_ids(self) -> tuple[bytes | pa.Buffer, str]:
        if not self.binary:
            return _csv(pa.table({"tx_id": self.tx_ids, "ts_us": pa.array(self.micros)})), "csv"
        fields = [binary_copy.Field("text", self.tx_ids), binary_copy.Field("int8", self.micros)]
        return binary_copy.encode(fields, len(self.frame)), "binary"

    @cached_property
    def direct_alert(self) -> tuple[bytes | pa.Buffer, str] | None:
        # The stored rows (all of them, on this path) the alert step and the NOTIFY look at.
        kept = self.ranks >= self.keep_rank
        if not kept.any():
            return None
        alertable = self.ranks[kept] >= (self.alert_rank or 99)
        fields = self.direct_fields
        if fields is None:
            table = self.direct_table.select(list(ALERT_COLUMNS[:-1])).filter(pa.array(kept))
            return _csv(table.append_column("alertable", pa.array(alertable))), "csv"
        rows = np.flatnonzero(kept)
        parts = [fields[n].take(rows) for n in ALERT_COLUMNS[:-1]]
        parts.append(binary_copy.Field("bool", alertable))
        return binary_copy.encode(parts, len(rows)), "binary"

    @cached_property
    def _summary(self) -> tuple:
        risk = self.frame["risk_score"].astype("float64").dropna().to_numpy()
        counts = [int(np.count_nonzero(self.ranks == r)) for r in range(1, len(bands.LABELS) + 1)]
        mean = float(risk.mean()) if len(risk) else None
        p95 = float(np.percentile(risk, 95)) if len(risk) else None  # = percentile_cont
        alertable = int(np.count_nonzero(self.ranks >= (self.alert_rank or 99)))
        return counts, mean, p95, int(self.micros.min()), int(self.micros.max()), alertable

    def direct_summary(self, tz: tzinfo) -> tuple:
        """What the staging path's INSERT returns, when every row is stored."""
        counts, mean, p95, first, last, alertable = self._summary
        first_ts, last_ts = _datetime(first, tz), _datetime(last, tz)
        return (len(self.frame), *counts, mean, p95, first_ts, last_ts, alertable)

    @cached_property
    def rule_hit_counts(self) -> dict[str, int]:
        """Hits per rule id in the batch (for the NOTIFY payload)."""
        hits = self.scored.hits
        if not len(hits):
            return {}
        counts = pc.value_counts(_arrow(hits["rule_id"]))
        return dict(
            zip(
                counts.field("values").to_pylist(),
                counts.field("counts").to_pylist(),
                strict=True,
            )
        )


def _csv(table: pa.Table) -> pa.Buffer:
    # pyarrow quotes every string and leaves nulls bare: exactly PostgreSQL's CSV convention
    # for telling '' from NULL.
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, batch_size=16384))
    return sink.getvalue()


def _tx_table(frame: pd.DataFrame) -> pa.Table:
    arrays: list[pa.Array] = [pa.array(np.arange(len(frame), dtype=np.int32))]
    for col in COLUMNS:
        series = frame[col.name]
        if col.kind == "timestamp":
            arrays.append(pa.array(_epoch_us(series)))
        else:
            arrays.append(_arrow(series))
    for name in SCORE_COLUMNS:
        arrays.append(_arrow(frame[name]))
    return pa.Table.from_arrays(arrays, names=list(STAGE_COLUMNS))


def _check_hit_rows(hits: pd.DataFrame, n_rows: int) -> None:
    rows = hits["row"].to_numpy(dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise StorageError(f"hits refer to row {int(rows.max())}, the batch has {n_rows} rows")


def _hits_table(hits: pd.DataFrame) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(hits["row"].to_numpy(dtype=np.int32)),
            _arrow(hits["rule_id"]),
            _arrow(hits["points"].astype("float64")),
        ],
        names=["pos", "rule_id", "points"],
    )


def _rule_hits_json(hits: pd.DataFrame, n_rows: int) -> pa.Array | None:
    """Per row, the JSON object {rule_id: points} of its hits ("{}" without any), as
    ``jsonb_object_agg`` would build it; None when a rule id holds a control character or
    points are not finite (not valid JSON: the staging path handles those)."""
    rows = hits["row"].to_numpy(dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    points = hits["points"].to_numpy(dtype=np.float64)[order]
    keys = _arrow(hits["rule_id"]).take(pa.array(order)).cast(pa.string())
    if (
        not np.isfinite(points).all()
        or pc.any(pc.match_substring_regex(keys, r"[\x00-\x1f]")).as_py()
    ):
        return None
    keys = pc.replace_substring(pc.replace_substring(keys, "\\", "\\\\"), '"', '\\"')
    # Shortest round-trip text: "30" for 30.0, as PostgreSQL writes a float8 into jsonb.
    entries = pc.binary_join_element_wise('"', keys, '":', pa.array(points).cast(pa.string()), "")
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
    per_row = pa.ListArray.from_arrays(pa.array(offsets), entries)
    return pc.binary_join_element_wise("{", pc.binary_join(per_row, ","), "}", "")


def _rule_hits_rows(hits: pd.DataFrame, n_rows: int) -> list[str]:
    """``rule_hits`` JSON text per row, one object at a time: only for what
    :func:`_rule_hits_json` refuses (rule ids are checked when loaded, so in practice never)."""
    import json

    rows: list[dict] = [{} for _ in range(n_rows)]
    for row, rule, pts in zip(hits["row"], hits["rule_id"], hits["points"], strict=True):
        rows[int(row)][str(rule)] = float(pts) if np.isfinite(pts) else None
    return [json.dumps(r) for r in rows]


def _datetime(micros: int, tz: tzinfo) -> datetime:
    """Epoch microseconds as the aware datetime psycopg would return in zone ``tz``."""
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(tz)


def _dead_table(dead: pd.DataFrame, source: str, worker: str) -> pa.Table:
    n = len(dead)
    return pa.Table.from_arrays(
        [
            pa.array([source] * n, pa.string()),
            pa.array([worker] * n, pa.string()),
            _arrow(dead["raw"].fillna("")),
            _arrow(dead["reason"].fillna("")),
        ],
        names=["source", "worker", "raw", "reason"],
    )


def _arrow(series: pd.Series) -> pa.Array:
    array = pa.array(series, from_pandas=True)  # NaN -> null
    if isinstance(array, pa.ChunkedArray):
        # pyarrow's CSV writer garbles a chunked column whose first chunk is empty (seen with
        # pyarrow 26: NUL bytes instead of text), so always hand it one contiguous array.
        array = array.combine_chunks()
    if pa.types.is_large_string(array.type) or pa.types.is_string(array.type):
        # PostgreSQL text cannot hold NUL: one bad byte must not sink the whole batch. One
        # scan of the character data (a NUL there outside the array's slice only costs the
        # replace) is ~10x cheaper than matching string by string.
        data = array.buffers()[2]
        if data is not None and not np.frombuffer(data, dtype=np.uint8).all():
            array = pc.replace_substring(array, "\x00", "\ufffd")
    elif pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


def _floats(series: pd.Series) -> np.ndarray:
    return np.asarray(pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan))


def _epoch_us(series: pd.Series) -> np.ndarray:
    # A zoned datetime array holds UTC instants: its integers are the epoch (naive: as UTC).
    return np.asarray(series.array.as_unit("us").asi8, dtype=np.int64)


def _days(micros: np.ndarray) -> list:
    if len(micros) == 0:
        return []
    day_numbers = np.unique(micros // 86_400_000_000)
    # One day ahead of the newest: the partition exists before the stream crosses midnight.
    day_numbers = np.union1d(day_numbers, day_numbers[-1:] + 1)
    return [(_EPOCH + timedelta(days=int(d))).date() for d in day_numbers]
