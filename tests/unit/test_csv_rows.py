"""The CSV reader's byte arithmetic: counts per line equal a plain count of the bytes."""

from __future__ import annotations

import numpy as np

from workbench.sources.csv_rows import _count_between, _positions


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
