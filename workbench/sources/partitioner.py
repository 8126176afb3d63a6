"""Which partition a card's transactions go to: Kafka's default partitioner, vectorized.

Apache Kafka's Java clients (and librdkafka with ``partitioner=murmur2_random``) put a keyed
message in partition ``(murmur2(key) & 0x7fffffff) % partitions``. ``workbench produce``
sends each message to that partition explicitly, and a worker that is assigned partitions
uses the same function to know whose stored history to rebuild its feature state from. A
producer of another system must use the same partitioner (the Java default; librdkafka's
default, ``consistent_random``, is not it).

>>> partition_of(["card-1", "card-2", ""], 6).tolist()
[5, 4, 3]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


def _byte_matrix(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Keys as a zero-padded ``(n, width)`` uint8 matrix (width a multiple of 4) and their
    byte lengths."""
    keys = keys.cast(pa.large_binary())
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[
        keys.offset : keys.offset + len(keys) + 1
    ]
    data = (
        np.frombuffer(keys.buffers()[2], dtype=np.uint8)
        if keys.buffers()[2]
        else np.zeros(1, np.uint8)
    )
    lengths = np.diff(offsets)
    width = int(-(-max(int(lengths.max(initial=0)), 1) // 4) * 4)
    idx = offsets[:-1, None] + np.arange(width)
    inside = np.arange(width) < lengths[:, None]
    matrix = np.where(inside, data[np.minimum(idx, len(data) - 1)], 0).astype(np.uint8)
    return matrix, lengths


def murmur2(keys: Sequence[str] | pa.Array) -> np.ndarray:
    """Kafka's murmur2 hash of each key's UTF-8 bytes (uint32)."""
    arr = keys if isinstance(keys, pa.Array) else pa.array(list(keys), type=pa.string())
    matrix, lengths = _byte_matrix(arr)
    n = len(lengths)
    with np.errstate(over="ignore"):
        h = _SEED ^ lengths.astype(np.uint32)
        words = matrix.view("<u4").reshape(n, -1) if n else np.zeros((0, 1), np.uint32)
        blocks = lengths // 4
        for j in range(words.shape[1]):
            k = words[:, j].astype(np.uint32) * _M
            k ^= k >> np.uint32(24)
            k *= _M
            mixed = (h * _M) ^ k
            h = np.where(j < blocks, mixed, h)
        rem = lengths % 4
        tail_at = (lengths & ~3).astype(np.int64)
        rows = np.arange(n)
        for shift, size in ((16, 3), (8, 2), (0, 1)):
            col = np.minimum(tail_at + (size - 1), matrix.shape[1] - 1)
            byte = matrix[rows, col].astype(np.uint32) << np.uint32(shift)
            h = np.where(rem >= size, h ^ byte, h)
        h = np.where(rem > 0, h * _M, h)
        h ^= h >> np.uint32(13)
        h *= _M
        h ^= h >> np.uint32(15)
    return h.astype(np.uint32)


def partition_of(keys: Sequence[str] | pa.Array, partitions: int) -> np.ndarray:
    """The partition of each key among ``partitions`` (int64)."""
    return (murmur2(keys) & np.uint32(0x7FFFFFFF)).astype(np.int64) % int(partitions)
