"""Fuzzed replay: hostile CSV files in, every good row out with its exact values, one dead
letter per bad line, and nothing else.

Each generated file mixes good records (known values) with bad ones of every kind the reader
and the schema must refuse. The oracle is the generator itself: it knows which lines are bad.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import schema
from workbench.sources.replay import ReplaySource

HEADER = "tx_id,ts,card_id,amount"
MAX_LINE = 65536

# Bad records: their lines (one or more) as bytes; every one of those lines is one dead letter.
BAD: dict[str, list[bytes]] = {
    "unclosed_quote": [b'{id},2026-01-01,"abc,1.00'],
    "quote_across_lines": [b'{id},2026-01-01,"ab', b'cd",1.00'],
    "too_many_fields": [b"{id},2026-01-01,c,1.00,extra"],
    "too_few_fields": [b"{id},2026-01-01,c"],
    "huge_field": [b"{id},2026-01-01," + b"x" * (MAX_LINE + 10) + b",1.00"],
    "long_id": [b"{id},2026-01-01," + b"y" * 129 + b",1.00"],
    "control_char": [b"{id},2026-01-01,a\x01b,1.00"],
    "not_a_number": [b"{id},2026-01-01,c,abc"],
    "exponent": [b"{id},2026-01-01,c,1e20"],
    "nan": [b"{id},2026-01-01,c,NaN"],
    "three_decimals": [b"{id},2026-01-01,c,1.005"],
    "negative": [b"{id},2026-01-01,c,-1"],
    "too_large": [b"{id},2026-01-01,c,1000000000.01"],
    "bad_date": [b"{id},not-a-date,c,1.00"],
    "year_1677": [b"{id},1677-10-01,c,1.00"],
    "year_2262": [b"{id},2262-01-01,c,1.00"],
    "not_utf8": [b"{id},2026-01-01,caf\xe9\xff,1.00"],
    "missing_id": [b",2026-01-01,c,1.00"],
}


@dataclass(frozen=True)
class Good:
    card: str
    cents: int
    second: int


goods = st.builds(
    Good,
    card=st.text(alphabet="abcXYZ019 ,é-_", min_size=1, max_size=12).filter(
        lambda s: s.strip() == s and s.strip()
    ),
    cents=st.integers(0, schema.MAX_CENTS),
    second=st.integers(0, 10**9),
)
records = st.lists(
    st.one_of(goods, st.sampled_from(sorted(BAD)), st.just("empty")), min_size=0, max_size=40
)


def csv_field(text: str) -> str:
    return f'"{text}"' if "," in text else text


def build(recs: list, *, bom: bool, crlf: bool, final_newline: bool):
    """The file's bytes, the good rows by tx_id, and the line numbers of the bad lines."""
    lines: list[bytes] = [HEADER.encode()]
    expected: dict[str, Good] = {}
    bad_lines: list[int] = []
    for i, rec in enumerate(recs):
        if rec == "empty":
            lines.append(b"")
        elif isinstance(rec, str):
            for part in BAD[rec]:
                lines.append(part.replace(b"{id}", f"b{i}".encode()))
                bad_lines.append(len(lines))  # 1-based: the header is line 1
        else:
            when = pd.Timestamp("2001-01-01", tz="UTC") + pd.Timedelta(seconds=rec.second)
            amount = f"{rec.cents // 100}.{rec.cents % 100:02d}"
            line = f"g{i},{when.isoformat()},{csv_field(rec.card)},{amount}"
            lines.append(line.encode())
            expected[f"g{i}"] = rec
    eol = b"\r\n" if crlf else b"\n"
    data = eol.join(lines) + (eol if final_newline else b"")
    return (codecs_bom() if bom else b"") + data, expected, bad_lines, len(lines) - 1


def physical_lines(data: bytes) -> int:
    """Data lines of the file as a reader sees them (a last line needs no newline)."""
    body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def codecs_bom() -> bytes:
    return b"\xef\xbb\xbf"


def read_all(source: ReplaySource):
    frames, dead, positions = [], [], []
    while (batch := source.next_batch()) is not None:
        frames.append(batch.frame)
        dead.append(batch.dead)
        positions.append(batch.position)
    source.close()
    frame = pd.concat(frames, ignore_index=True) if frames else schema.empty_batch()
    dead = pd.concat(dead, ignore_index=True) if dead else schema.empty_dead_letters()
    return frame, dead, positions


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    recs=records,
    bom=st.booleans(),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    gz=st.booleans(),
    batch_rows=st.integers(1, 25),
    resume=st.integers(0, 60),
)
def test_every_good_row_out_exactly_and_one_dead_letter_per_bad_line(
    tmp_path: Path, recs, bom, crlf, final_newline, gz, batch_rows, resume
) -> None:
    data, expected, bad_lines, n_lines = build(
        recs, bom=bom, crlf=crlf, final_newline=final_newline
    )
    path = tmp_path / ("fuzz.csv.gz" if gz else "fuzz.csv")
    path.write_bytes(gzip.compress(data) if gz else data)

    frame, dead, positions = read_all(ReplaySource(path, batch_rows=batch_rows))

    # Conservation: records out = good rows + one dead letter per bad line, nothing more.
    assert len(frame) == len(expected)
    assert len(dead) == len(bad_lines)
    assert positions[-1:] == ([physical_lines(data)] if physical_lines(data) else [])
    # Every dead letter says where it came from.
    where = sorted(int(re.match(r"line (\d+): ", r).group(1)) for r in dead["reason"])
    assert where == bad_lines
    assert (dead["raw"].str.len() <= 500).all()
    # Every good row is there with its exact values.
    assert sorted(frame["tx_id"]) == sorted(expected)
    by_id = frame.set_index("tx_id")
    for tx_id, rec in expected.items():
        row = by_id.loc[tx_id]
        assert row["card_id"] == rec.card
        assert int(schema.cents([row["amount"]])[0]) == rec.cents
        assert row["ts"] == pd.Timestamp("2001-01-01", tz="UTC") + pd.Timedelta(seconds=rec.second)
    assert int(schema.cents(frame["amount"]).sum()) == sum(r.cents for r in expected.values())

    # Resuming after any position gives exactly the good rows on the lines after it.
    start = min(resume, n_lines)  # past the end is fine too: nothing left
    rest, rest_dead, _ = read_all(ReplaySource(path, batch_rows=batch_rows, start_position=start))
    line, good_lines = 1, {}
    for i, r in enumerate(recs):
        line += len(BAD[r]) if isinstance(r, str) and r in BAD else 1
        if isinstance(r, Good):
            good_lines[f"g{i}"] = line
    assert sorted(rest["tx_id"]) == sorted(t for t, ln in good_lines.items() if ln > start + 1)
    assert len(rest_dead) == sum(1 for ln in bad_lines if ln > start + 1)
