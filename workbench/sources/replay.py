"""Replay a CSV or Parquet file as a stream of typed batches, resumable by position.

Every batch goes the same way whatever the format: raw rows -> :meth:`ColumnMapping.apply`
-> :func:`workbench.schema.coerce` -> :class:`SourceBatch`. A CSV file is typed a parsed
block (16,384 lines) at a time and the result cut into batches, so small batches cost no more
per row than big ones (a mapping with a declared ``ts_format`` or ``ts_origin`` is typed batch
by batch). The source never sleeps (pacing
is :class:`~workbench.sources.base.Pacer`'s job) and never raises on a bad record: it becomes a
dead letter with its reason, so ``records in = stored + duplicates + dead letters`` holds for
any input.

Files: ``.csv``, ``.csv.gz``, ``.parquet`` / ``.pq``, and ``-`` (CSV on standard input).

A batch's ``position`` is the number of data lines (CSV, after the header, empty lines
included) or rows (Parquet) consumed so far, so ``ReplaySource(path, start_position=acked)``
resumes exactly after the last acknowledged batch. Without empty lines or multi-line records
it equals the records read.

The CSV reader (:mod:`workbench.sources.csv_rows`) takes the file in blocks of lines and checks
each block with vectorized byte arithmetic (numpy over the block's bytes): quotes per line,
line lengths, stray carriage returns, UTF-8 (or the ``encoding`` given). Lines that fail become
dead letters with their line number and raw text (first
:data:`~workbench.sources.csv_rows.RAW_CHARS` characters); the rest of the block is parsed at
once by ``pyarrow.csv``, whose row hook hands back rows with the wrong number of fields. So one
bad line costs that line only, and per-line Python runs only over lines already known bad (or,
for a block whose bytes are not valid text, over that block). A quoted field may not span lines
unless the mapping says ``multiline: true``; a line (or multi-line record) longer than the
``replay_max_line_bytes`` setting is a dead letter, and reading goes on at the next line.

>>> src = ReplaySource("fraud.csv", mapping="handbook")          # doctest: +SKIP
>>> while (batch := src.next_batch()) is not None:               # doctest: +SKIP
...     store(batch.frame, batch.dead); src.ack(batch.position)

:func:`write_dataset` writes batches to a file this source reads back identically.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench import schema
from workbench.errors import SourceError
from workbench.settings import Settings
from workbench.sources.base import SourceBatch, register_source
from workbench.sources.csv_rows import STDIN, CsvRows, Typer, one_line
from workbench.sources.mapping import ColumnMapping

AUTO_BATCH_MAX = 16384
"""The most rows per batch a replay picks by itself (one parsed CSV block)."""
AUTO_BATCHES = 8
"""An unpaced replay picks batches of about 1/8 of the file (at least the ``batch_rows``
default, at most :data:`AUTO_BATCH_MAX`), so even a small file is read in a few batches."""
PACED_BATCH_SECONDS = 0.1
"""A paced replay picks batches of about this many seconds of its rate: a batch waits for its
last row no longer than that."""
_SAMPLE_BYTES = 1 << 16

_KINDS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the file name (``-`` is CSV on standard input);
    :class:`SourceError` for anything else."""
    if str(path) == STDIN:
        return "csv"
    name = Path(path).name.lower()
    for suffix in sorted(_KINDS, key=len, reverse=True):
        if name.endswith(suffix):
            return _KINDS[suffix]
    suffix = Path(path).suffix.lower()
    raise SourceError(
        f"unsupported file type '{suffix or Path(path).name}' for {path} "
        f"(use {', '.join(_KINDS)} or - for standard input)"
    )


def auto_batch_rows(path: str | Path, *, rate: float | None, settings: Settings) -> int:
    """The batch size of a replay of ``path``: ``settings.batch_rows`` when it was set
    (environment or ``--batch-rows``), else chosen from the input.

    * paced (``rate``): about :data:`PACED_BATCH_SECONDS` of the rate (1,000 rows at 10k tx/s),
      so latency stays low;
    * standard input, unpaced: the ``batch_rows`` default (its length is unknown, and rows may
      trickle in from a live producer);
    * a file, unpaced: about 1/:data:`AUTO_BATCHES` of its rows (estimated from its size and its
      first lines, exact for Parquet), between the default and :data:`AUTO_BATCH_MAX`. Per-batch
      costs (a database transaction, a features pass) are then paid every 16k rows, not 1k.

    >>> auto_batch_rows("-", rate=10_000, settings=Settings.load({}))
    1000
    """
    if settings.is_set("batch_rows"):
        return settings.batch_rows
    default = settings.batch_rows
    if rate:
        return int(min(AUTO_BATCH_MAX, max(1, round(rate * PACED_BATCH_SECONDS))))
    if str(path) == STDIN:
        return default
    rows = _estimated_rows(Path(path))
    if rows is None:
        return default
    return int(min(AUTO_BATCH_MAX, max(default, rows // AUTO_BATCHES)))


def _estimated_rows(path: Path) -> int | None:
    """Rows in a Parquet file (from its metadata), or in a CSV file estimated from its size and
    its first lines (of a ``.gz`` file: from how many compressed bytes they took); ``None`` when
    the file cannot be read (the source itself reports why)."""
    try:
        if file_kind(path) == "parquet":
            return pq.ParquetFile(path).metadata.num_rows
        size = path.stat().st_size
        with open(path, "rb") as raw:
            if path.name.lower().endswith(".gz"):
                sample, taken = _gzip_sample(raw)
            else:
                sample = raw.read(_SAMPLE_BYTES)
                taken = len(sample)
    except (OSError, EOFError, zlib.error, SourceError, pa.ArrowException):
        return None
    lines = sample.count(b"\n")
    if not lines or not taken:
        return 1
    return int(size / taken * lines)


def _gzip_sample(raw: BinaryIO) -> tuple[bytes, int]:
    """The first uncompressed bytes of a gzip stream (:data:`_SAMPLE_BYTES` x 4: text
    compresses well) and how many compressed bytes they took, to within 4 KB."""
    inflate, out, taken = zlib.decompressobj(wbits=31), [], 0
    while sum(map(len, out)) < 4 * _SAMPLE_BYTES:
        chunk = raw.read(4096)
        if not chunk:
            break
        taken += len(chunk)
        out.append(inflate.decompress(chunk))
    return b"".join(out), taken - len(inflate.unused_data)


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
        encoding: str = "utf-8",
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
        self.path = Path(path) if str(path) != STDIN else STDIN
        self.mapping = mapping
        if settings is None:
            settings = Settings.load({})
        self._ts_min = pd.Timestamp(settings.ts_min)
        self._ts_max = pd.Timestamp(settings.ts_max)
        kind = file_kind(path)
        if self.path != STDIN and not Path(self.path).is_file():
            raise SourceError(f"replay file not found: {self.path}")
        self._rows: CsvRows | _ParquetRows
        if kind == "csv":
            self._rows = CsvRows(
                self.path,
                batch_rows,
                self._type,
                encoding=encoding,
                max_line=settings.replay_max_line_bytes,
                multiline=mapping.multiline,
                # A declared ts form parses the whole call at once and falls back to text for
                # the call when one value fails: typed batch by batch, as it always was.
                block_typing=not (mapping.ts_format or mapping.ts_origin),
            )
        else:
            self._rows = _ParquetRows(Path(self.path), batch_rows, self._type)
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
        frame, dead, consumed = chunk
        self.position += consumed
        return SourceBatch(frame=frame, dead=dead, position=self.position)

    def _type(
        self, raw: pd.DataFrame, lines: np.ndarray | None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        return schema.coerce(
            self.mapping.apply(raw), ts_min=self._ts_min, ts_max=self._ts_max, lines=lines
        )

    def progress(self) -> float | None:
        """Share of the input read so far (0..1), or ``None`` when unknown (standard input)."""
        return self._rows.progress()

    @property
    def label(self) -> str:
        """``replay:<absolute path>`` (``replay:-`` for standard input)."""
        where = self.path if self.path == STDIN else Path(self.path).resolve()
        return f"{self.name}:{where}"

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


class _ParquetRows:
    """Parquet rows batch by batch; whole row groups before the start position are skipped
    from the file's metadata without being read."""

    def __init__(self, path: Path, batch_rows: int, typer: Typer) -> None:
        self.path, self.batch_rows, self.typer = path, batch_rows, typer
        try:
            self._file: pq.ParquetFile | None = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read Parquet file {path}: {one_line(exc)}") from None
        self.columns = list(self._file.schema_arrow.names)
        self._batches = iter(())
        self._skip = 0
        self._done = 0

    def start(self, columns: list[str], skip: int) -> None:
        assert self._file is not None
        self._done = skip
        meta, first = self._file.metadata, 0
        while first < meta.num_row_groups and skip >= meta.row_group(first).num_rows:
            skip -= meta.row_group(first).num_rows
            first += 1
        self._skip = skip
        groups = list(range(first, meta.num_row_groups))
        self._batches = self._file.iter_batches(
            batch_size=self.batch_rows, row_groups=groups, columns=columns
        )

    def progress(self) -> float | None:
        if self._file is None:
            return 1.0
        total = self._file.metadata.num_rows
        return min(1.0, self._done / total) if total else 1.0

    def read(self) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
        try:
            chunk = self._read()
            if chunk is not None:
                self._done += chunk[2]
            return chunk
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read {self.path}: {one_line(exc)}") from None

    def _read(self) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
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
                typed, dead = self.typer(frame, None)
                return typed, dead, len(frame)
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
            gz = path.name.lower().endswith(".gz")
            opener = gzip.open if gz else open
            with opener(path, "wt", newline="", encoding="utf-8") as fh:
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
        raise SourceError(f"cannot write {path}: {one_line(exc)}") from None
    return rows
