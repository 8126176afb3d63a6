"""Importing a chargeback file: hostile CSV in, checked rows as labels, the rest reported.

The file has a header with ``tx_id``, ``label`` (fraud | legitimate), ``known_at`` (ISO 8601;
without a zone it is UTC) and optionally ``source`` (default ``chargeback``; lower-case
``[a-z][a-z0-9_]*``, at most 32 characters; ``analyst`` is refused: analyst labels come
only from audited dispositions). Everything is checked before the database, column by column
over the whole file (no per-row Python): a bad row is reported with its line number and
reason, never stored. Rows that pass are COPYed into a temporary table; then one statement
reports the tx_ids that no stored transaction has, and those whose ``known_at`` is before the
transaction's own ``ts``, and one ``INSERT ... SELECT`` stores the rest (in file order, so a
later line for the same tx_id and source supersedes an earlier one). The caller's audit row
goes in the same transaction (``on_done``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from workbench import schema
from workbench.errors import StorageError
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, raw
from workbench.storage.labels import ANALYST, LABELS

MAX_BYTES = 512 * 1024 * 1024
MAX_BAD = 1000  # bad rows reported one by one; past this the file is refused as a whole
REQUIRED = ("tx_id", "label", "known_at")
OPTIONAL = ("source",)
DEFAULT_SOURCE = "chargeback"


@dataclass
class ImportReport:
    """What an import did: rows stored, and the rows refused as ``(line, reason)``."""

    rows: int = 0
    stored: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)  # (line, tx_id)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "stored": self.stored,
            "bad": len(self.bad),
            "unknown_tx_id": len(self.unknown),
        }


def parse(path: Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The file's checked rows (columns line, tx_id, label, known_at, source) and the bad
    ones as ``(line, reason)``. A file that is not a labels file at all raises StorageError."""
    path = Path(path)
    if path.stat().st_size > MAX_BYTES:
        raise StorageError(f"{path.name}: larger than {MAX_BYTES // 2**20} MiB")
    bad: list[tuple[int, str]] = []

    def invalid(row) -> str:  # only for malformed rows: few, or the file is refused
        bad.append((int(row.number or 0), f"{row.actual_columns} fields, expected "
                    f"{row.expected_columns}"))  # fmt: skip
        if len(bad) > MAX_BAD:
            raise StorageError(f"{path.name}: more than {MAX_BAD} malformed rows")
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=False, ignore_empty_lines=True, invalid_row_handler=invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in (*REQUIRED, *OPTIONAL)},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise StorageError(f"{path.name}: not a readable CSV file: {exc}") from None
    names = [str(n).strip().lower() for n in table.column_names]
    missing = [c for c in REQUIRED if c not in names]
    extra = [n for n in names if n not in (*REQUIRED, *OPTIONAL)]
    if missing or extra or len(set(names)) != len(names):
        raise StorageError(
            f"{path.name}: the header must name tx_id, label, known_at[, source]"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(repr(e[:40]) for e in extra[:5])}" if extra else "")
        )
    frame = table.rename_columns(names).to_pandas()
    frame["line"] = _lines(len(frame), [n for n, _ in bad])
    rows, more = check(frame)
    return rows, sorted(bad + more)


def _lines(n: int, bad_lines: list[int]) -> np.ndarray:
    """Line numbers of the good rows: lines 2.. minus those of the malformed rows (a value
    with a line break is refused by :func:`check`, so each row here is one line)."""
    lines = np.arange(2, n + len(bad_lines) + 2)
    return np.setdiff1d(lines, np.asarray(bad_lines, dtype=np.int64))[:n]


def check(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Vectorized checks of every column; the good rows (typed) and the bad as (line, why)."""
    tx = frame["tx_id"].astype("str").str.strip()
    label = frame["label"].astype("str").str.strip().str.lower()
    source = (
        frame["source"].astype("str").str.strip()
        if "source" in frame
        else pd.Series(DEFAULT_SOURCE, index=frame.index)
    )
    source = source.where(source != "", DEFAULT_SOURCE)
    known_at = pd.to_datetime(
        frame["known_at"].astype("str").str.strip(), format="ISO8601", utc=True, errors="coerce"
    )
    control = r"[\x00-\x1f\x7f]"
    texts = frame[["tx_id", "label", "known_at", *(["source"] if "source" in frame else [])]]
    has_control = texts.apply(lambda c: c.astype("str").str.contains(control)).any(axis=1)
    reasons = [
        (tx == "", "empty tx_id"),
        (tx.str.len() > schema.ID_MAX_LEN, f"tx_id longer than {schema.ID_MAX_LEN} characters"),
        (has_control, "control character"),
        (~label.isin(LABELS), "label must be fraud or legitimate"),
        (known_at.isna(), "known_at is not an ISO 8601 time"),
        ((known_at < schema.TS_MIN) | (known_at >= schema.TS_MAX), "known_at out of range"),
        (~source.str.fullmatch(r"[a-z][a-z0-9_]{0,31}"), "source must match [a-z][a-z0-9_]*"),
        (source == ANALYST, "source analyst is for dispositions only"),
    ]
    why = pd.Series("", index=frame.index, dtype="str")
    for mask, reason in reasons:
        mask = mask.fillna(True).to_numpy(bool)
        why = why.where(~mask | (why != ""), reason)
    bad = why != ""
    out = pd.DataFrame(
        {
            "line": frame["line"],
            "tx_id": tx,
            "label": label,
            "known_at": known_at,
            "source": source,
        }
    )[~bad.to_numpy()]
    lines = frame["line"][bad.to_numpy()].to_numpy()
    return out, list(zip(lines.tolist(), why[bad.to_numpy()].tolist(), strict=True))


_STAGE = """
CREATE TEMPORARY TABLE label_import (
    line bigint, tx_id text COLLATE "C", label text, known_at timestamptz, source text
) ON COMMIT DROP
"""
_MATCH = """
CREATE TEMPORARY TABLE label_match ON COMMIT DROP AS
SELECT i.*, 'epoch'::timestamptz + x.ts_us * interval '1 microsecond' AS ts
FROM label_import i LEFT JOIN transaction_ids x ON x.tx_id = i.tx_id
"""
_UNKNOWN = "SELECT line, tx_id FROM label_match WHERE ts IS NULL ORDER BY line"
_EARLY = "SELECT line FROM label_match WHERE ts IS NOT NULL AND known_at < ts ORDER BY line"
_INSERT = """
INSERT INTO labels (tx_id, ts, card_id, customer_id, terminal_id, merchant_category,
                    label, known_at, source, actor)
SELECT t.tx_id, t.ts, t.card_id, t.customer_id, t.terminal_id, t.merchant_category,
       m.label, m.known_at, m.source, %s
FROM label_match m JOIN transactions t ON t.tx_id = m.tx_id AND t.ts = m.ts
WHERE m.known_at >= m.ts
ORDER BY m.line
"""


def import_file(
    source: Source,
    path: Path,
    actor: str,
    on_done: Callable[[object, ImportReport], None] | None = None,
) -> ImportReport:
    """Check ``path`` and store its good rows as labels in one transaction; ``on_done(conn,
    report)`` runs inside it (the audit row)."""
    rows, bad = parse(path)
    report = ImportReport(rows=len(rows) + len(bad), bad=bad)
    payload = rows.assign(known_at=rows["known_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    data = payload[["line", "tx_id", "label", "known_at", "source"]].to_csv(
        index=False, header=False
    )
    with raw(source) as conn, storage_errors("cannot import labels"), conn.transaction():
        conn.execute(_STAGE)
        with conn.cursor().copy("COPY label_import FROM STDIN (FORMAT csv)") as copy:
            copy.write(data.encode())
        conn.execute("ANALYZE label_import")  # a temporary table has no statistics
        conn.execute(_MATCH)
        conn.execute("ANALYZE label_match")
        report.unknown = [(int(a), str(b)) for a, b in conn.execute(_UNKNOWN).fetchall()]
        early = [(int(a), "known_at before the transaction's ts") for (a,) in conn.execute(_EARLY)]
        report.bad = sorted(report.bad + early)
        report.stored = conn.execute(_INSERT, (str(actor)[:200],)).rowcount
        if on_done is not None:
            on_done(conn, report)
    return report
