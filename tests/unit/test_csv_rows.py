"""The CSV reader's byte arithmetic: counts per line equal a plain count of the bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import schema
from workbench.sources.csv_rows import CsvRows, _count_between, _positions


def test_counting_between_offsets_equals_counting_the_bytes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        blob = bytes(rng.choice(list(b'ab,"\r\n'), size=int(rng.integers(0, 400))).tolist())
        arr = np.frombuffer(blob, np.uint8)
        cuts = np.sort(rng.integers(0, len(blob) + 1, size=(20, 2)), axis=1)
        starts, ends = cuts[:, 0], cuts[:, 1]
        for byte in b'"\r':
            got = _count_between(_positions(blob, arr, byte), starts, ends)
            want = [blob[s:e].count(byte) for s, e in zip(starts, ends, strict=True)]
            assert got.tolist() == want


BAD_LINES = [
    b'{id},2026-01-01,"abc,1.00',  # an unclosed quote
    b"{id},2026-01-01,c,1.00,extra",  # a field too many
    b"{id},2026-01-01," + b"y" * 129 + b",1.00",  # an id too long
    b"{id},2026-01-01,c,abc",  # amounts that are not money
    b"{id},2026-01-01,c,1.005",
    b"{id},2026-01-01,c,-1",
    b"{id},not-a-date,c,1.00",  # a ts that is not one
    b"{id},2026-01-01,caf\xe9\xff,1.00",  # not UTF-8
    b",2026-01-01,c,1.00",  # no tx_id
    b"{id},2026-01-01,a\rb,1.00",  # a CR inside the line
    b"",  # an empty line
]


def hostile_file(path: Path, rows: int, seed: int) -> tuple[Path, int]:
    """The file and its number of empty lines (no record)."""
    rng = np.random.default_rng(seed)
    lines = [b"tx_id,ts,card_id,amount"]
    for i in range(rows):
        if rng.random() < 0.2:
            bad = BAD_LINES[int(rng.integers(len(BAD_LINES)))]
            lines.append(bad.replace(b"{id}", b"b%d" % i))
        else:
            lines.append(
                b't%d,2026-01-01 00:%02d:00,"c,%d",%d.%02d' % (i, i % 60, i % 7, i, i % 100)
            )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines.count(b"")


def typer(raw: pd.DataFrame, lines):
    return schema.coerce(raw, lines=lines)


def batches(path: Path, batch_rows: int, block_typing: bool, multiline: bool = False) -> list:
    rows = CsvRows(path, batch_rows, typer, block_typing=block_typing, multiline=multiline)
    rows.start(rows.columns, 0)
    out = []
    while (chunk := rows.read()) is not None:
        out.append(chunk)
    return out


@pytest.mark.parametrize(("batch_rows", "rows"), [(1, 300), (7, 2_000), (1000, 20_000),
                                                  (20_000, 45_000)])  # fmt: skip
def test_typing_a_whole_block_gives_the_batches_of_typing_each_batch(tmp_path, batch_rows, rows):
    """Same rows, dead letters (reasons, raw text, order) and positions, whichever way."""
    path, empty = hostile_file(tmp_path / "h.csv", rows, seed=batch_rows)
    by_block = batches(path, batch_rows, block_typing=True)
    by_batch = batches(path, batch_rows, block_typing=False)
    assert len(by_block) == len(by_batch) > 0
    for (f1, d1, n1), (f2, d2, n2) in zip(by_block, by_batch, strict=True):
        assert n1 == n2
        pd.testing.assert_frame_equal(f1, f2)
        pd.testing.assert_frame_equal(d1, d2)
    dead = pd.concat([d for _, d, _ in by_block])
    assert dead["reason"].str.contains("amount").any()  # the typer refused rows, too
    assert dead["reason"].str.contains("unclosed quote").any()  # and the parser lines
    assert sum(len(f) + len(d) for f, d, _ in by_block) == rows - empty
    assert sum(n for _, _, n in by_block) == rows


def test_block_typing_of_multiline_records_too(tmp_path):
    path, _ = hostile_file(tmp_path / "h.csv", 3_000, seed=3)
    by_block = batches(path, 50, block_typing=True, multiline=True)
    by_batch = batches(path, 50, block_typing=False, multiline=True)
    assert len(by_block) == len(by_batch) > 0
    for (f1, d1, n1), (f2, d2, n2) in zip(by_block, by_batch, strict=True):
        assert n1 == n2
        pd.testing.assert_frame_equal(f1, f2)
        pd.testing.assert_frame_equal(d1, d2)
