"""Reading CSV text robustly: blocks of lines checked with vectorized byte arithmetic, parsed
by ``pyarrow.csv``, and only the lines already known bad handled one by one.

Used by :class:`workbench.sources.replay.ReplaySource` (see its module docstring for what a
bad line costs). A line that fails becomes a dead letter with its line number and raw text
(first :data:`RAW_CHARS` characters).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from workbench import schema
from workbench.errors import SourceError

STDIN = "-"
RAW_CHARS = 500
"""Characters of a refused line kept in its dead letter."""
_CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8
_NL, _CR, _QUOTE = 10, 13, 34
_BLOCK_LINES = 16384
_LINE_PREFIX = re.compile(r"^line (\d+): ")

Typer = Callable[[pd.DataFrame, np.ndarray | None], tuple[pd.DataFrame, pd.DataFrame]]
"""Raw records and their line numbers -> typed batch and dead letters, row by row (each row's
outcome depends on that row alone), each dead letter's reason starting ``line N: ``:
:func:`workbench.schema.coerce` after the column mapping."""


class _Lines:
    """Whole lines of a byte stream, a block at a time, each block ending in a newline.

    A line longer than ``max_line`` bytes is cut to its first ``max_line`` bytes and its
    index in the block reported, and the rest of it is skipped as it streams past: one huge
    line never fills memory.
    """

    def __init__(self, stream: BinaryIO, max_line: int) -> None:
        self._stream, self._max = stream, max_line
        self._buf = b""
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def unread(self, data: bytes) -> None:
        self._buf = data + self._buf

    def take(self, n: int) -> tuple[bytes, list[int]] | None:
        """Up to ``n`` lines and the indices of those cut short; ``None`` at the end."""
        pieces: list[bytes] = []
        over: list[int] = []
        got = 0
        while got < n:
            if not self._buf and not self._fill():
                break
            buf = self._buf
            nl = np.flatnonzero(np.frombuffer(buf, np.uint8) == _NL)[: n - got]
            if len(nl) == 0:
                if len(buf) > self._max:
                    pieces.append(buf[: self._max] + b"\n")
                    over.append(got)
                    self._buf = b""
                    self._skip_rest_of_line()
                    got += 1
                elif not self._fill():  # the last line has no newline
                    pieces.append(buf + b"\n")
                    self._buf = b""
                    got += 1
                continue
            lengths = np.diff(nl, prepend=-1) - 1
            long = np.flatnonzero(lengths > self._max)
            stop = len(nl) if long.size == 0 else int(long[0])
            end = int(nl[stop - 1]) + 1 if stop else 0
            if stop:
                pieces.append(buf[:end])
                got += stop
            if long.size:
                pieces.append(buf[end : end + self._max] + b"\n")
                over.append(got)
                got += 1
                end = int(nl[stop]) + 1
            self._buf = buf[end:]
        if not got:
            return None
        return b"".join(pieces), over

    def _skip_rest_of_line(self) -> None:
        while self._fill():
            at = self._buf.find(b"\n")
            if at >= 0:
                self._buf = self._buf[at + 1 :]
                return
            self._buf = b""

    def skip(self, n: int) -> int:
        """Drop ``n`` lines unparsed; the number actually dropped."""
        done = 0
        while done < n:
            block = self.take(min(n - done, 100_000))
            if block is None:
                break
            done += block[0].count(b"\n")
        return done


class CsvRows:
    """Typed batches of CSV records block by block, with dead letters for the lines that
    fail (to parse, then to type).

    ``typer`` turns raw records into typed rows. It runs once per parsed block (16,384 lines)
    whatever the batch size, and its output is cut into batches by line number: a batch of
    1,000 rows costs a sixteenth of a block's typing, not a whole call's fixed costs. With
    ``block_typing=False`` (a mapping whose per-call result may depend on the other rows of
    the call) it runs once per batch instead.
    """

    def __init__(
        self,
        path: Path | str,
        batch_rows: int,
        typer: Typer,
        *,
        encoding: str = "utf-8",
        max_line: int = 65536,
        multiline: bool = False,
        block_typing: bool = True,
    ) -> None:
        self.path, self.batch_rows = path, batch_rows
        self.typer, self.block_typing = typer, block_typing
        self.max_line, self.multiline = max_line, multiline
        self.encoding = _check_encoding(encoding)
        self._size: int | None = None
        try:
            if path == STDIN:
                self._raw: BinaryIO = sys.stdin.buffer
            else:
                self._raw = open(path, "rb")  # noqa: SIM115 - closed by close()
                self._size = os.fstat(self._raw.fileno()).st_size
            gz = str(path).lower().endswith(".gz")
            stream: BinaryIO = gzip.open(self._raw, "rb") if gz else self._raw  # type: ignore[assignment]  # noqa: SIM115
            self._lines: _Lines | None = _Lines(stream, max_line)
            first = self._lines.take(1)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"cannot read CSV header of {path}: {one_line(exc)}") from None
        self._line = 1  # physical lines consumed, header included
        header = b"" if first is None else first[0].removeprefix(_BOM).rstrip(b"\r\n")
        try:
            names = next(csv.reader([header.decode(self.encoding)], strict=True), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            self.close()
            raise SourceError(f"cannot read CSV header of {path}: {one_line(exc)}") from None
        if not names or names == [""]:
            self.close()
            raise SourceError(f"cannot read CSV header of {path}: no header line")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            self.close()
            raise SourceError(f"CSV header of {path} repeats column(s): {', '.join(dupes)}")
        self.columns = names
        self._wanted = names
        self._pending: deque[tuple[pd.DataFrame, pd.DataFrame, int]] = deque()

    def start(self, columns: list[str], skip: int) -> None:
        """Read only ``columns`` (every line's field count is still checked against the
        whole header); skip ``skip`` data lines."""
        self._wanted = columns
        if skip and self._lines is not None:
            self._line += self._lines.skip(skip)

    def progress(self) -> float | None:
        if self._size is None or self._raw.closed:
            return None if self._size is None else 1.0
        return min(1.0, self._raw.tell() / self._size) if self._size else 1.0

    def read(self) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
        """Typed batch, dead letters (those of parsing first, then those of typing), lines
        consumed; ``None`` at the end."""
        consumed = 0
        while True:
            if self._pending:
                frame, dead, n = self._pending.popleft()
                consumed += n
                if len(frame) or len(dead):
                    return frame, dead, consumed
                continue
            if self._lines is None:
                break
            try:
                # Parsing costs a fixed overhead per call: parse big blocks, hand out batches.
                block = self._lines.take(max(self.batch_rows, _BLOCK_LINES))
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise SourceError(f"cannot read {self.path}: {one_line(exc)}") from None
            if block is None:
                self.close()
                break
            blob, over = block
            if self.multiline:
                blob, over = self._whole_records(blob, over)
            first, n_lines = self._line + 1, blob.count(b"\n")
            self._line += n_lines
            parsed = self._parse(blob, over, first)
            self._pending.extend(self._typed(*parsed, first, first + n_lines))
        if consumed:  # only empty lines were left
            frame, _ = self.typer(self._empty(), np.zeros(0, np.int64))
            return frame, schema.empty_dead_letters(), consumed
        return None

    def _typed(
        self,
        frame: pd.DataFrame,
        dead: pd.DataFrame,
        lines: np.ndarray,
        dead_lines: np.ndarray,
        first: int,
        end: int,
    ) -> Iterable[tuple[pd.DataFrame, pd.DataFrame, int]]:
        """A parsed block typed and cut into batches (see :meth:`_batches` for the cut)."""
        if self.block_typing:
            typed, refused = self.typer(frame, lines)
            refused_lines = _reason_lines(refused)
            if refused_lines is not None and len(refused_lines) + len(typed) == len(lines):
                kept = lines[~np.isin(lines, refused_lines)]
                if len(kept) == len(typed):
                    batches = self._batches(typed, dead, kept, dead_lines, first, end,
                                            refused, refused_lines)  # fmt: skip
                    for t, d, n, _, r in batches:
                        yield t, _dead_first(d, r), n
                    return
        # Per batch: the typer's output is cut by the records it was given.
        for raw, d, n, lines_b, _ in self._batches(frame, dead, lines, dead_lines, first, end):
            typed, refused = self.typer(raw, lines_b)
            yield typed, _dead_first(d, refused), n

    def _batches(
        self,
        frame: pd.DataFrame,
        dead: pd.DataFrame,
        lines: np.ndarray,
        dead_lines: np.ndarray,
        first: int,
        end: int,
        refused: pd.DataFrame | None = None,
        refused_lines: np.ndarray | None = None,
    ) -> Iterable[tuple[pd.DataFrame, pd.DataFrame, int, np.ndarray, pd.DataFrame]]:
        """A block cut into batches of ``batch_rows`` records (rows of ``frame``, ``dead`` and
        ``refused``, each sorted by line number), in line order; each batch owns the lines
        from its first record to the next batch's. Per batch: its rows, dead letters, lines
        consumed, the rows' line numbers and its refused rows."""
        if refused is None or refused_lines is None:
            refused, refused_lines = schema.empty_dead_letters(), np.zeros(0, np.int64)
        if len(frame) + len(dead) + len(refused) <= self.batch_rows:
            yield frame, dead, end - first, lines, refused
            return
        records = np.sort(np.concatenate((lines, dead_lines, refused_lines)))
        bounds = [first, *records[self.batch_rows :: self.batch_rows].tolist(), end]
        for lo, hi in pairwise(bounds):
            f0, f1 = np.searchsorted(lines, [lo, hi])
            d0, d1 = np.searchsorted(dead_lines, [lo, hi])
            r0, r1 = np.searchsorted(refused_lines, [lo, hi])
            yield (
                frame.iloc[f0:f1].reset_index(drop=True),
                dead.iloc[d0:d1].reset_index(drop=True),
                hi - lo,
                lines[f0:f1],
                refused.iloc[r0:r1].reset_index(drop=True),
            )

    def _whole_records(self, blob: bytes, over: list[int]) -> tuple[bytes, list[int]]:
        """The block cut after its last complete record (quotes balanced); the open record
        is read again with the next block, unless it is already over the length bound: then
        its first line is given up (it becomes a dead letter) and reading resumes after it."""
        assert self._lines is not None
        while True:
            arr = np.frombuffer(blob, np.uint8)
            nl = np.flatnonzero(arr == _NL)
            quotes = _count_between(_positions(blob, arr, _QUOTE), np.r_[0, nl[:-1] + 1], nl)
            closed = np.flatnonzero(np.cumsum(quotes % 2) % 2 == 0)
            if len(closed) and closed[-1] == len(nl) - 1:
                return blob, over
            if len(closed):
                end = int(nl[closed[-1]]) + 1
                self._lines.unread(blob[end:])
                return blob[:end], [i for i in over if i <= closed[-1]]
            # One record open from the first line to the end of the block.
            more = None if len(blob) > self.max_line else self._lines.take(self.batch_rows)
            if more is None:
                end = int(nl[0]) + 1  # the first line alone, as a line the parser refuses
                self._lines.unread(blob[end:])
                return blob[:end], [i for i in over if i == 0]
            base = len(nl)
            blob, over = blob + more[0], over + [base + i for i in more[1]]

    def _parse(
        self, blob: bytes, over: list[int], first_line: int
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
        """Good records, dead letters, and the line numbers of each."""
        arr = np.frombuffer(blob, np.uint8)
        nl = np.flatnonzero(arr == _NL)
        starts = np.concatenate(([0], nl[:-1] + 1))
        ends = nl - ((nl > starts) & (arr[np.maximum(nl - 1, 0)] == _CR))
        line_no = first_line + np.arange(len(nl))
        at_quote = _positions(blob, arr, _QUOTE)
        quotes = _count_between(at_quote, starts, ends)
        # Records: one per line, or (multiline) lines joined until their quotes balance.
        if self.multiline:
            closes = np.cumsum(quotes % 2) % 2 == 0
            closes[-1] = True  # a record left open here is a line given up: refused below
            last = np.flatnonzero(closes)
            first = np.concatenate(([0], last[:-1] + 1))
            r_start, r_end, r_line = starts[first], ends[last], line_no[first]
            r_quotes = _count_between(at_quote, r_start, r_end)
            r_over = np.zeros(len(first), bool)
            if over:
                r_over[np.searchsorted(last, over)] = True
            r_long = (r_end - r_start) > self.max_line
            r_next = nl[last] + 1
        else:
            r_start, r_end, r_line, r_quotes = starts, ends, line_no, quotes
            r_over = np.zeros(len(nl), bool)
            r_over[over] = True
            r_long = r_over
            r_next = nl + 1
        n = len(r_start)
        reason = np.full(n, None, dtype=object)
        reason[r_long | r_over] = f"line longer than {self.max_line} bytes"
        odd = (r_quotes % 2 == 1) & pd.isna(reason)
        reason[odd] = (
            "unclosed quote (a quoted field may not span lines unless the mapping "
            "says multiline: true)"
        )
        if b"\r" in blob:
            # pyarrow ends a row at a lone CR too: a CR inside a line would split it in two.
            stray = (_count_between(_positions(blob, arr, _CR), r_start, r_end) > 0) & pd.isna(
                reason
            )
            reason[stray] = "carriage return inside a line"
        empty = r_end == r_start
        good = pd.isna(reason) & ~empty
        text_ok = self._check_text(blob, r_start, r_end, good)
        reason[good & ~text_ok] = f"not valid {self.encoding} text"
        good &= text_ok
        if good.all():
            good_blob = blob
        else:
            keep = np.repeat(good, r_next - r_start)
            good_blob = arr[keep].tobytes()
        if self.encoding != "utf-8" and good_blob:
            good_blob = good_blob.decode(self.encoding).encode("utf-8")
        good_idx = np.flatnonzero(good)
        frame, wrong = self._arrow(good_blob, good_idx, r_start, r_end, blob, reason)
        if wrong is not None:
            good_idx = np.delete(good_idx, wrong)
        bad = np.flatnonzero(pd.notna(reason))
        dead = _dead_lines(blob, r_start[bad], r_end[bad], r_line[bad], reason[bad])
        return frame, dead, r_line[good_idx], r_line[bad]

    def _check_text(
        self, blob: bytes, starts: np.ndarray, ends: np.ndarray, good: np.ndarray
    ) -> np.ndarray:
        try:
            blob.decode(self.encoding)
            return np.ones(len(starts), bool)
        except UnicodeDecodeError:
            pass
        # Only a block that holds bad bytes pays for a per-line look.
        ok = np.ones(len(starts), bool)
        for i in np.flatnonzero(good):
            try:
                blob[starts[i] : ends[i]].decode(self.encoding)
            except UnicodeDecodeError:
                ok[i] = False
        return ok

    def _arrow(
        self,
        good_blob: bytes,
        good_idx: np.ndarray,
        r_start: np.ndarray,
        r_end: np.ndarray,
        blob: bytes,
        reason: np.ndarray,
    ) -> tuple[pd.DataFrame, list[int] | None]:
        if not len(good_idx):
            return self._empty(), None
        expected = len(self.columns)
        wrong: list[int] = []

        def refuse(row: pa_csv.InvalidRow) -> str:
            # Rows are numbered from 1 within the good lines given to the parser.
            at = row.number - 1 if row.number is not None else -1
            if not 0 <= at < len(good_idx):
                return "error"
            wrong.append(at)
            reason[good_idx[at]] = f"{row.actual_columns} fields, the header has {expected}"
            return "skip"

        try:
            table = pa_csv.read_csv(
                io.BytesIO(good_blob),
                read_options=pa_csv.ReadOptions(
                    column_names=self.columns, use_threads=False, block_size=1 << 30
                ),
                parse_options=pa_csv.ParseOptions(
                    invalid_row_handler=refuse, newlines_in_values=self.multiline
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={c: pa.string() for c in self.columns},
                    include_columns=self._wanted,
                    strings_can_be_null=True,
                    null_values=[""],
                ),
            )
        except (pa.ArrowInvalid, ValueError):
            table = None
        if table is None or table.num_rows != len(good_idx) - len(wrong):
            reason[good_idx[wrong]] = None  # the slow path below judges every line again
            return self._by_line(good_idx, r_start, r_end, blob, reason)
        return table.to_pandas(), (sorted(wrong) or None)

    def _by_line(
        self,
        good_idx: np.ndarray,
        r_start: np.ndarray,
        r_end: np.ndarray,
        blob: bytes,
        reason: np.ndarray,
    ) -> tuple[pd.DataFrame, list[int] | None]:
        """The slow path, for a block the fast parser refused: the csv module, line by line."""
        expected = len(self.columns)
        rows, wrong = [], []
        for k, i in enumerate(good_idx):
            text = blob[r_start[i] : r_end[i]].decode(self.encoding)
            try:
                fields = next(
                    csv.reader([text] if not self.multiline else io.StringIO(text), strict=True)
                )
            except (csv.Error, StopIteration) as exc:
                reason[i] = f"malformed CSV: {one_line(exc)}"
                wrong.append(k)
                continue
            if len(fields) != expected:
                reason[i] = f"{len(fields)} fields, the header has {expected}"
                wrong.append(k)
                continue
            rows.append([f if f != "" else None for f in fields])
        frame = pd.DataFrame(rows, columns=self.columns, dtype="str")[self._wanted]
        return frame, (wrong or None)

    def _empty(self) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in self._wanted})

    def close(self) -> None:
        self._lines = None
        raw = getattr(self, "_raw", None)
        if raw is not None and raw is not sys.stdin.buffer and not raw.closed:
            raw.close()


def _reason_lines(dead: pd.DataFrame) -> np.ndarray | None:
    """The line number each dead letter's reason starts with (``line N: ``), or ``None`` if
    one does not (then the block is typed batch by batch instead)."""
    if not len(dead):
        return np.zeros(0, np.int64)
    found = dead["reason"].str.extract(_LINE_PREFIX, expand=False)
    if found.isna().any():
        return None
    return found.astype("int64").to_numpy()


def _dead_first(dead: pd.DataFrame, refused: pd.DataFrame) -> pd.DataFrame:
    """A batch's dead letters: the lines that failed to parse, then the rows refused typing."""
    if not len(dead):
        return refused
    return pd.concat([dead, refused], ignore_index=True) if len(refused) else dead


def _positions(blob: bytes, arr: np.ndarray, byte: int) -> np.ndarray:
    """Offsets of ``byte`` in the block (most blocks hold no quote or CR: one memchr)."""
    if bytes((byte,)) not in blob:
        return np.zeros(0, np.int64)
    return np.flatnonzero(arr == byte)


def _count_between(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of the sorted ``positions`` fall in each ``[start, end)``: two binary
    searches per line rather than a running count over every byte of the block."""
    if not len(positions):
        return np.zeros(len(starts), np.int64)
    return np.searchsorted(positions, ends) - np.searchsorted(positions, starts)


def _dead_lines(
    blob: bytes, starts: np.ndarray, ends: np.ndarray, lines: np.ndarray, reasons: np.ndarray
) -> pd.DataFrame:
    if not len(starts):
        return schema.empty_dead_letters()
    # Per-line Python, but only for lines already known bad.
    raw = [
        blob[s:e].decode("utf-8", errors="backslashreplace")[:RAW_CHARS]
        for s, e in zip(starts, ends, strict=True)
    ]
    why = [f"line {n}: {r}" for n, r in zip(lines, reasons, strict=True)]
    return pd.DataFrame({"raw": pd.Series(raw, dtype="str"), "reason": pd.Series(why, dtype="str")})


def _check_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise SourceError(f"unknown encoding '{encoding}'") from None
    # Lines are found by their bytes: the encoding must write newline, quote and comma as ASCII.
    if '\n",a'.encode(name) != b'\n",a':
        raise SourceError(f"encoding '{encoding}' is not ASCII-compatible; convert the file first")
    return "utf-8" if name == "utf-8" else name


def one_line(exc: BaseException) -> str:
    """An error's text on one line (a file error's reason without its path)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
