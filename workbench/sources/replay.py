"""Replay a CSV or Parquet file as a stream of typed batches, resumable by row position.

Every batch goes the same way whatever the format: raw rows -> :meth:`ColumnMapping.apply`
-> :func:`workbench.schema.coerce` -> :class:`SourceBatch`. A batch's ``position`` is the
number of data rows of the file consumed so far (stored rows plus dead letters), so
``ReplaySource(path, start_position=acked)`` resumes exactly after the last acknowledged
batch. The source never sleeps (pacing is :class:`~workbench.sources.base.Pacer`'s job) and
never raises on a bad row: it becomes a dead letter with its reason.

>>> src = ReplaySource("fraud.csv", mapping="handbook")          # doctest: +SKIP
>>> while (batch := src.next_batch()) is not None:               # doctest: +SKIP
...     store(batch.frame, batch.dead); src.ack(batch.position)

:func:`write_dataset` writes batches to a file this source reads back identically.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench import schema
from workbench.errors import SourceError
from workbench.settings import Settings
from workbench.sources.base import SourceBatch, register_source
from workbench.sources.mapping import ColumnMapping

_KINDS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the file name; :class:`SourceError` for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in _KINDS:
        raise SourceError(
            f"unsupported file type '{suffix or Path(path).name}' for {path} "
            f"(use {', '.join(_KINDS)})"
        )
    return _KINDS[suffix]


@register_source("replay")
class ReplaySource:
    """Batches from a CSV or Parquet file, renamed by a column mapping."""

    name = "replay"

    def __init__(
        self,
        path: str | Path,
        *,
        mapping: ColumnMapping | str | Path | None = None,
        batch_rows: int | None = None,
        start_position: int = 0,
        settings: Settings | None = None,
    ) -> None:
        if batch_rows is None:
            batch_rows = settings.batch_rows if settings is not None else 1000
        if batch_rows <= 0 or start_position < 0:
            raise SourceError(
                f"batch_rows must be positive and start_position >= 0, "
                f"got {batch_rows} and {start_position}"
            )
        if mapping is None:
            mapping = ColumnMapping()
        elif not isinstance(mapping, ColumnMapping):
            mapping = ColumnMapping.from_yaml(mapping)
        self.path = Path(path)
        self.mapping = mapping
        kind = file_kind(self.path)
        if not self.path.is_file():
            raise SourceError(f"replay file not found: {self.path}")
        reader = _CsvRows if kind == "csv" else _ParquetRows
        self._rows: _CsvRows | _ParquetRows = reader(self.path, batch_rows)
        try:  # check the mapping against the header now, not at the first batch
            plan = mapping.resolve(self._rows.columns)
            self._rows.start(sorted(set(plan.values())), start_position)
        except BaseException:
            self._rows.close()
            raise
        self.position = start_position
        self.acked_position = start_position
        """The last position passed to :meth:`ack` (the resume point after a crash)."""

    def next_batch(self) -> SourceBatch | None:
        """The next batch, or ``None`` at the end of the file."""
        chunk = self._rows.read()
        if chunk is None:
            return None
        raw, bad = chunk
        frame, dead = schema.coerce(self.mapping.apply(raw))
        if len(bad):
            dead = pd.concat([dead, bad], ignore_index=True) if len(dead) else bad
        self.position += len(raw) + len(bad)
        return SourceBatch(frame=frame, dead=dead, position=self.position)

    def ack(self, position: int) -> None:
        """Rows up to ``position`` are committed; resume from here after a crash."""
        self.acked_position = max(self.acked_position, int(position))

    def close(self) -> None:
        """Close the file; later calls to :meth:`next_batch` return ``None``."""
        self._rows.close()

    def __enter__(self) -> ReplaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CsvRows:
    """CSV data rows as text, batch by batch; lines with too many fields come back apart.

    The fast C parser reads until it meets a line it cannot take (more fields than the
    header); then the file is reopened at the same row with the Python parser, whose
    ``on_bad_lines`` hook hands such lines over as dead letters, for the rest of the file.
    """

    def __init__(self, path: Path, batch_rows: int) -> None:
        self.path, self.batch_rows = path, batch_rows
        try:
            header = pd.read_csv(path, nrows=0, dtype=str, encoding_errors="replace")
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise SourceError(f"cannot read CSV header of {path}: {_one_line(exc)}") from None
        self.columns = [str(c) for c in header.columns]
        self._bad: list[list[str]] = []
        self._reader = None
        self._engine = "c"
        self._rows = 0  # data rows consumed, good and bad
        self._failed: Exception | None = None

    def start(self, columns: list[str], skip: int) -> None:
        """Open and skip ``skip`` data rows. (All columns are read: a line's field count is
        only checked against the whole header.)"""
        # Rows are skipped by reading them: skiprows counts physical lines, which differ
        # from rows once a quoted value holds a newline.
        self._open()
        try:
            while self._rows < skip:
                if self._next(min(skip - self._rows, 100_000)) is None:
                    return
        except (pd.errors.ParserError, csv.Error) as exc:
            self._failed = exc  # reported by read(), as if met there

    def read(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        try:
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            chunk = self._next(self.batch_rows)
        except (pd.errors.ParserError, csv.Error) as exc:
            # Even the Python parser gave up (e.g. a quote never closed): the rest of the file
            # cannot be split into rows, so it ends as one dead letter that says where.
            self.close()
            reason = f"CSV unreadable from data row {self._rows + 1} to the end: {_one_line(exc)}"
            self._rows += 1
            return pd.DataFrame(columns=self.columns, dtype="str"), pd.DataFrame(
                {"raw": pd.Series([""], dtype="str"), "reason": pd.Series([reason], dtype="str")}
            )
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {_one_line(exc)}") from None
        if chunk is None:
            return None
        frame, bad = chunk
        expected = len(self.columns)
        dead = (
            pd.DataFrame(
                {
                    "raw": pd.Series(
                        [json.dumps(fields, ensure_ascii=False) for fields in bad], dtype="str"
                    ),
                    "reason": pd.Series(
                        [f"too many fields: {len(f)} (header has {expected})" for f in bad],
                        dtype="str",
                    ),
                }
            )
            if bad
            else schema.empty_dead_letters()
        )
        return frame, dead

    def _open(self) -> None:
        options: dict = {}
        if self._engine == "python":
            options["on_bad_lines"] = self._bad.append
        self._reader = pd.read_csv(
            self.path,
            dtype=str,
            keep_default_na=True,
            chunksize=self.batch_rows,
            engine=self._engine,
            encoding_errors="replace",
            **options,
        )

    def _next(self, rows: int) -> tuple[pd.DataFrame, list[list[str]]] | None:
        if self._reader is None:
            return None
        try:
            frame = self._reader.get_chunk(rows)
        except StopIteration:
            self.close()
            return None
        except (pd.errors.ParserError, csv.Error):
            if self._engine == "python":
                raise
            self._reader.close()
            consumed, self._rows, self._engine = self._rows, 0, "python"
            self._open()
            while self._rows < consumed:  # back to where the C parser stopped
                if self._next(min(consumed - self._rows, 100_000)) is None:
                    return None
            return self._next(rows)
        bad = list(self._bad)  # the parser's hook holds this very list: empty it in place
        self._bad.clear()
        if len(frame) == 0 and not bad:
            self.close()
            return None
        self._rows += len(frame) + len(bad)
        return frame, bad

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class _ParquetRows:
    """Parquet rows batch by batch; whole row groups before the start position are skipped
    from the file's metadata without being read."""

    def __init__(self, path: Path, batch_rows: int) -> None:
        self.path, self.batch_rows = path, batch_rows
        try:
            self._file: pq.ParquetFile | None = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read Parquet file {path}: {_one_line(exc)}") from None
        self.columns = list(self._file.schema_arrow.names)
        self._batches = iter(())
        self._skip = 0

    def start(self, columns: list[str], skip: int) -> None:
        assert self._file is not None
        meta, first = self._file.metadata, 0
        while first < meta.num_row_groups and skip >= meta.row_group(first).num_rows:
            skip -= meta.row_group(first).num_rows
            first += 1
        self._skip = skip
        groups = list(range(first, meta.num_row_groups))
        self._batches = self._file.iter_batches(
            batch_size=self.batch_rows, row_groups=groups, columns=columns
        )

    def read(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        try:
            return self._read()
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read {self.path}: {_one_line(exc)}") from None

    def _read(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        for batch in self._batches:
            if self._skip:
                batch, self._skip = batch.slice(self._skip), max(0, self._skip - len(batch))
            if len(batch):
                # Dictionary-encoded columns would arrive as categoricals; schema wants values.
                arrays = [
                    a.dictionary_decode() if pa.types.is_dictionary(a.type) else a
                    for a in batch.columns
                ]
                frame = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names).to_pandas()
                return frame, schema.empty_dead_letters()
        return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._batches = iter(())


def write_dataset(batches: Iterable[pd.DataFrame], path: str | Path) -> int:
    """Write batches to a CSV or Parquet file (by extension), one append per batch, and
    return the rows written. :class:`ReplaySource` with no mapping reads it back identically.
    """
    path = Path(path)
    kind, rows, columns = file_kind(path), 0, None
    try:
        if kind == "csv":
            with path.open("w", newline="", encoding="utf-8") as fh:
                for batch in batches:
                    first = columns is None
                    columns = list(batch.columns) if first else columns
                    batch[columns].to_csv(fh, index=False, header=first)
                    rows += len(batch)
                if columns is None:
                    schema.empty_batch().to_csv(fh, index=False)
            return rows
        writer: pq.ParquetWriter | None = None
        try:
            for batch in batches:
                table = pa.Table.from_pandas(
                    batch, preserve_index=False, schema=None if writer is None else writer.schema
                )
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
                rows += len(batch)
            if writer is None:
                pq.write_table(
                    pa.Table.from_pandas(schema.empty_batch(), preserve_index=False), path
                )
        finally:
            if writer is not None:
                writer.close()
    except OSError as exc:
        raise SourceError(f"cannot write {path}: {_one_line(exc)}") from None
    return rows


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
