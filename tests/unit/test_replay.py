"""ReplaySource and write_dataset: foreign files in, typed batches out, counts conserved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import schema
from workbench.errors import SourceError
from workbench.settings import Settings
from workbench.sources.mapping import ColumnMapping
from workbench.sources.replay import ReplaySource, write_dataset

HEADER = (
    "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,"
    "TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"
)
GOOD = "{i},2018-04-01 00:{m:02d}:31,{c},3156,57.16,{s},0,{f},{f}"
# Row index -> a bad line and the reason it must produce (data row i is line i + 2).
BAD = {
    2: ("2,not-a-date,596,3156,57.16,31,0,0,0", "line 4: ts is not a timestamp: 'not-a-date'"),
    4: ("4,2018-04-01 00:04:31,596,3156,-3.5,31,0,0,0", "line 6: amount is negative"),
    5: ("5,2018-04-01 00:05:31,596,3156,lots,31,0,0,0", "line 7: amount is not a number: 'lots'"),
    7: (",2018-04-01 00:07:31,596,3156,1.00,31,0,0,0", "line 9: tx_id is missing"),
    8: (
        "8,2018-04-01 00:08:31,596,3156,1.00,31,0,0,0,EXTRA",
        "line 10: 10 fields, the header has 9",
    ),
    11: ('11,2018-04-01 00:11:31,"59,6",3156,1.00,31,0,0,0', None),  # a comma inside quotes
}
N = 14


def handbook_lines() -> list[str]:
    lines = []
    for i in range(N):
        if i in BAD:
            lines.append(BAD[i][0])
        else:
            lines.append(GOOD.format(i=i, m=i, c=100 + i % 3, s=60 * i + 31, f=int(i == 3)))
    return lines


@pytest.fixture
def handbook_csv(tmp_path: Path) -> Path:
    path = tmp_path / "handbook.csv"
    path.write_text("\n".join([HEADER, *handbook_lines()]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def handbook_parquet(tmp_path: Path) -> Path:
    rows = [
        GOOD.format(i=i, m=i, c=100 + i % 3, s=60 * i + 31, f=int(i == 3)).split(",")
        for i in range(N)
    ]
    frame = pd.DataFrame(rows, columns=HEADER.split(","))
    for col in ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID", "TX_TIME_SECONDS", "TX_FRAUD"):
        frame[col] = frame[col].astype("int64")
    frame["TX_AMOUNT"] = frame["TX_AMOUNT"].astype(float)
    frame.loc[4, "TX_AMOUNT"] = -1.0
    frame["TX_DATETIME"] = pd.to_datetime(frame["TX_DATETIME"])
    path = tmp_path / "handbook.parquet"
    frame.to_parquet(path, row_group_size=4)  # several row groups, to test skipping them
    return path


def read_all(source: ReplaySource) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    frames, dead, positions = [], [], []
    while (batch := source.next_batch()) is not None:
        assert batch.records == len(batch.frame) + len(batch.dead) > 0
        frames.append(batch.frame)
        dead.append(batch.dead)
        positions.append(batch.position)
    source.close()
    if not frames:
        return schema.empty_batch(), schema.empty_dead_letters(), positions
    return (pd.concat(frames, ignore_index=True), pd.concat(dead, ignore_index=True), positions)


def test_handbook_csv_through_the_builtin_mapping(handbook_csv):
    frame, dead, positions = read_all(ReplaySource(handbook_csv, mapping="handbook", batch_rows=4))
    assert positions == [4, 8, 12, 14]
    assert len(frame) + len(dead) == N
    expected_dead = {reason for i, (_, reason) in BAD.items() if reason}
    assert set(dead["reason"]) == expected_dead and len(dead) == len(expected_dead)
    first = frame.iloc[0]
    assert (first.tx_id, first.card_id, first.customer_id, first.terminal_id) == (
        "0",
        "100",
        "100",
        "3156",
    )
    assert first.ts == pd.Timestamp("2018-04-01 00:00:31", tz="UTC") and first.amount == 57.16
    assert frame.loc[frame.tx_id == "3", "is_fraud"].tolist() == [True]
    assert frame.loc[frame.tx_id == "11", "card_id"].tolist() == ["59,6"]
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: str(t) for c, t in schema.empty_batch().dtypes.items()
    }
    too_many = dead.loc[dead.reason.str.contains("fields"), "raw"].iloc[0]
    assert too_many == BAD[8][0]


def test_handbook_parquet_gives_the_same_rows_as_csv(handbook_csv, handbook_parquet):
    from_csv, _, _ = read_all(ReplaySource(handbook_csv, mapping="handbook"))
    from_pq, dead, _ = read_all(ReplaySource(handbook_parquet, mapping="handbook", batch_rows=3))
    assert dead["reason"].tolist() == ["amount is negative"]  # Parquet has no line numbers
    both = set(from_csv.tx_id) & set(from_pq.tx_id) - {"11"}  # 11 differs in the CSV on purpose
    assert len(both) == len(from_csv) - 1
    common = from_pq[from_pq.tx_id.isin(both)].reset_index(drop=True)
    expected = from_csv[from_csv.tx_id.isin(both)].reset_index(drop=True)
    pd.testing.assert_frame_equal(common, expected)


def test_mapping_through_options_and_defaults(handbook_csv):
    mapping = ColumnMapping.from_options(
        [
            "tx_id=TRANSACTION_ID",
            "ts=TX_TIME_SECONDS",
            "ts_origin=2018-04-01",
            "card_id=TERMINAL_ID",
            "amount=TX_AMOUNT",
            "currency:=USD",
            "channel:=ecom",
        ]
    )
    frame, dead, _ = read_all(ReplaySource(handbook_csv, mapping=mapping))
    assert len(frame) + len(dead) == N
    row = frame.iloc[0]
    assert row.ts == pd.Timestamp("2018-04-01 00:00:31", tz="UTC")
    assert (row.card_id, row.customer_id, row.currency, row.channel) == ("3156",) * 2 + (
        "USD",
        "ecom",
    )
    assert (row.country, row.merchant_category) == ("unknown", "unknown")
    assert np.isnan(row.lat) and pd.isna(row.is_fraud)


def test_yaml_mapping_file_with_defaults_and_ts_format(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("id,when,card,eur\n1,31/12/2025 23:59,k,5\n2,12/31/2025 23:59,k,6\n")
    spec = tmp_path / "odd.yaml"
    spec.write_text(
        "columns: {tx_id: id, ts: when, card_id: card, amount: eur}\n"
        "defaults: {country: FR, lat: 48.8}\n"
        "ts_format: '%d/%m/%Y %H:%M'\n"
    )
    frame, dead, _ = read_all(ReplaySource(path, mapping=spec))
    assert frame["ts"].iloc[0] == pd.Timestamp("2025-12-31 23:59", tz="UTC")
    assert (frame["country"].iloc[0], frame["lat"].iloc[0]) == ("FR", 48.8)
    # the value that misses the declared format falls back to the automatic parser
    assert len(frame) + len(dead) == 2


def test_identity_columns_need_no_mapping(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("tx_id,ts,card_id,amount,extra\n1,1700000000,c,2.5,x\n")
    frame, dead, _ = read_all(ReplaySource(path))
    assert len(dead) == 0
    assert frame["ts"].iloc[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")


@pytest.mark.parametrize("fixture", ["handbook_csv", "handbook_parquet"])
def test_resume_from_any_position_gives_exactly_the_remaining_rows(fixture, request):
    path = request.getfixturevalue(fixture)
    full, _, _ = read_all(ReplaySource(path, mapping="handbook", batch_rows=4))
    row_of = full["tx_id"].astype(int)
    for start in range(N + 1):
        src = ReplaySource(path, mapping="handbook", batch_rows=3, start_position=start)
        frame, dead, positions = read_all(src)
        assert frame["tx_id"].tolist() == full.loc[row_of >= start, "tx_id"].tolist()
        assert len(frame) + len(dead) == N - start
        assert positions[-1:] == ([N] if start < N else [])


def test_resume_at_a_batch_position_continues_with_the_next_batch(handbook_csv):
    src = ReplaySource(handbook_csv, mapping="handbook", batch_rows=5)
    first = src.next_batch()
    src.ack(first.position)
    src.ack(2)  # an older position never moves the resume point back
    assert src.acked_position == 5
    rest_here, _, _ = read_all(src)
    resumed = ReplaySource(handbook_csv, mapping="handbook", batch_rows=5, start_position=5)
    rest_there, _, _ = read_all(resumed)
    pd.testing.assert_frame_equal(rest_here, rest_there)


def test_batch_rows_from_settings(handbook_csv):
    settings = Settings.load({"WORKBENCH_BATCH_ROWS": "6"})
    _, _, positions = read_all(ReplaySource(handbook_csv, mapping="handbook", settings=settings))
    assert positions == [6, 12, 14]


def test_an_unclosed_quote_costs_its_line_only(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text(
        'tx_id,ts,card_id,amount\n1,2026-01-01,a,1\n2,2026-01-01,b,1,x\n3,2026,"c\n'
        "4,2026-01-01,d,2\n"
    )
    frame, dead, positions = read_all(ReplaySource(path, batch_rows=10))
    assert frame["tx_id"].tolist() == ["1", "4"]
    assert dead["reason"].tolist() == [
        "line 3: 5 fields, the header has 4",
        "line 4: unclosed quote (a quoted field may not span lines unless the mapping says "
        "multiline: true)",
    ]
    assert dead["raw"].tolist() == ["2,2026-01-01,b,1,x", '3,2026,"c']
    assert positions == [4]


def test_a_header_only_file_has_no_batches(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("tx_id,ts,card_id,amount\n")
    with ReplaySource(path) as source:
        assert source.next_batch() is None


def sample_batches() -> list[pd.DataFrame]:
    raw = pd.DataFrame(
        {
            "tx_id": ["a1", "007", "x,y", 'q"uote', "é"],
            "ts": [
                "2026-01-01T00:00:00.123456789Z",
                "2026-01-01T01:00:00Z",
                "2026-01-02T00:00:00+02:00",
                "1700000000",
                "2026-03-01",
            ],
            "card_id": ["c1", "c2", "c1", "c3", "c4"],
            "terminal_id": ["t1", None, "t,2", "t3", 'q"uoted'],
            "amount": ["0.1", "12345.67", "0", "1000000000.00", "3.10"],
            "lat": ["45.5", "", "-89.99", "0", "12.3456789"],
            "is_fraud": ["true", "false", "", "1", None],
            "fraud_scenario": ["", "", "leak", "", "x"],
        }
    )
    batch, dead = schema.coerce(raw)
    assert len(dead) == 0
    return [batch.iloc[:2], batch.iloc[2:]]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_dataset_round_trip(tmp_path, suffix):
    batches = sample_batches()
    path = tmp_path / f"out{suffix}"
    assert write_dataset(iter(batches), path) == 5
    frame, dead, positions = read_all(ReplaySource(path, batch_rows=3))
    assert len(dead) == 0 and positions == [3, 5]
    expected = pd.concat(batches, ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_dataset_of_no_batches_writes_an_empty_readable_file(tmp_path, suffix):
    path = tmp_path / f"none{suffix}"
    assert write_dataset([], path) == 0
    with ReplaySource(path) as source:
        assert source.next_batch() is None


def test_errors_opening_files_are_one_line_source_errors(tmp_path, handbook_csv):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = [
        (lambda: ReplaySource(tmp_path / "missing.csv"), "not found"),
        (lambda: ReplaySource(tmp_path / "data.json"), "unsupported file type '.json'"),
        (lambda: ReplaySource(garbage), "cannot read Parquet file"),
        (lambda: ReplaySource(empty), "cannot read CSV header"),
        (lambda: ReplaySource(handbook_csv), "no column for required tx_id, ts, card_id, amount"),
        (lambda: ReplaySource(handbook_csv, batch_rows=0), "batch_rows must be positive"),
        (lambda: write_dataset([], tmp_path / "x.txt"), "unsupported file type"),
        (lambda: write_dataset([], tmp_path / "no" / "dir.csv"), "cannot write"),
    ]
    for make, message in cases:
        with pytest.raises(SourceError) as info:
            make()
        assert message in str(info.value)
        assert "\n" not in str(info.value)


def test_registered_as_a_source(handbook_csv):
    pytest.importorskip("workbench.sources.simulator")  # the registry loads every built-in
    from workbench.sources.base import create_source

    source = create_source("replay", path=handbook_csv, mapping="handbook")
    try:
        assert isinstance(source, ReplaySource) and source.next_batch() is not None
    finally:
        source.close()


HEAD4 = "tx_id,ts,card_id,amount\n"


def test_bom_crlf_and_empty_lines(tmp_path):
    path = tmp_path / "win.csv"
    body = HEAD4 + "1,2026-01-01,a,1.10\n\n2,2026-01-01,b,2.20\n\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode())
    frame, dead, positions = read_all(ReplaySource(path))
    assert len(dead) == 0 and frame["tx_id"].tolist() == ["1", "2"]
    assert frame["card_id"].tolist() == ["a", "b"] and schema.cents(frame["amount"]).sum() == 330
    assert positions == [4]  # data lines consumed, the empty ones included


def test_gzip_and_stdin(tmp_path, monkeypatch):
    import gzip
    import io
    import sys

    data = (HEAD4 + "1,2026-01-01,a,1\n2,2026-01-01,b,x\n").encode()
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(data))
    frame, dead, _ = read_all(ReplaySource(path))
    assert frame["tx_id"].tolist() == ["1"] and dead["reason"].tolist() == [
        "line 3: amount is not a number: 'x'"
    ]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    source = ReplaySource("-")
    assert source.progress() is None
    frame, dead, _ = read_all(source)
    assert frame["tx_id"].tolist() == ["1"] and len(dead) == 1


def test_non_utf8_is_refused_per_line_or_decoded_with_an_explicit_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(HEAD4.encode() + b"1,2026-01-01,caf\xe9,1\n2,2026-01-01,b,2\n")
    frame, dead, _ = read_all(ReplaySource(path))
    assert frame["tx_id"].tolist() == ["2"]
    assert dead["reason"].tolist() == ["line 2: not valid utf-8 text"]
    assert dead["raw"].tolist() == ["1,2026-01-01,caf\\xe9,1"]  # shown escaped, never replaced
    frame, dead, _ = read_all(ReplaySource(path, encoding="latin-1"))
    assert frame["card_id"].tolist() == ["café", "b"] and len(dead) == 0
    with pytest.raises(SourceError, match="not ASCII-compatible"):
        ReplaySource(path, encoding="utf-16")


def test_a_huge_line_costs_that_line_only(tmp_path):
    settings = Settings.load({"WORKBENCH_REPLAY_MAX_LINE_BYTES": "1000"})
    path = tmp_path / "huge.csv"
    path.write_text(
        HEAD4 + "1,2026-01-01,a,1\n2,2026-01-01," + "z" * 5000 + ",1\n3,2026-01-01,c,1\n"
    )
    frame, dead, positions = read_all(ReplaySource(path, settings=settings, batch_rows=2))
    assert frame["tx_id"].tolist() == ["1", "3"] and positions == [2, 3]
    assert dead["reason"].tolist() == ["line 3: line longer than 1000 bytes"]
    assert len(dead["raw"].iloc[0]) == 500


def test_quoted_fields_span_lines_only_when_the_mapping_says_so(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text(
        "tx_id,ts,card_id,amount,note\n"
        '1,2026-01-01,a,1,"two\nlines"\n'
        "2,2026-01-01,b,2,plain\n"
        '3,2026-01-01,c,3,"never closed\n'
        "4,2026-01-01,d,4,plain\n"
    )
    frame, dead, _ = read_all(ReplaySource(path))
    assert frame["tx_id"].tolist() == ["2", "4"]
    assert [r.split(":")[0] for r in dead["reason"]] == ["line 2", "line 3", "line 5"]
    multiline = ColumnMapping(multiline=True)
    frame, dead, positions = read_all(ReplaySource(path, mapping=multiline, batch_rows=2))
    assert frame["tx_id"].tolist() == ["1", "2", "4"]
    assert dead["reason"].tolist() == [
        "line 5: unclosed quote (a quoted field may not span lines unless the mapping says "
        "multiline: true)"
    ]
    assert frame.loc[0, "tx_id"] == "1" and positions[-1] == 5
    assert ColumnMapping.from_options(["multiline=true"]).multiline is True


def test_timestamp_window_from_settings(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(HEAD4 + "1,2018-04-01,a,1\n2,2026-01-01,b,1\n")
    settings = Settings.load({"WORKBENCH_TS_MIN": "2020-01-01"})
    frame, dead, _ = read_all(ReplaySource(path, settings=settings))
    assert frame["tx_id"].tolist() == ["2"]
    assert dead["reason"].tolist() == [
        "line 2: ts is outside 2020-01-01 .. 2100-01-01: '2018-04-01'"
    ]


def test_replay_progress_line():
    from workbench.cli.run_cmd import ReplayProgress
    from workbench.pipeline.stats import PipelineStats

    now = [100.0]
    share = [0.25]
    progress = ReplayProgress(lambda: share[0], None, clock=lambda: now[0])
    stats = PipelineStats(records=50_000, dead=3)
    now[0] = 110.0
    assert progress.line(stats) == (
        "replay: 50,000 rows,  25.0%, 5,000 rows/s, ETA 0:00:30 | dead letters 3"
    )
    share[0] = 1.0
    assert "done in 0:00:10" in progress.line(stats)
    stdin = ReplayProgress(lambda: None, None, clock=lambda: now[0])
    assert stdin.line(stats).startswith("replay: 50,000 rows, ")


def test_the_slow_path_gives_what_the_fast_path_gives(handbook_csv, tmp_path, monkeypatch):
    """A block the fast parser refuses is read line by line with the csv module instead."""
    import pyarrow as pa

    from workbench.sources import csv_rows

    with handbook_csv.open("a") as fh:
        fh.write('99,2018-04-01 00:59:31,"open,3156,1.00,31,0,0,0\n')
    fast = read_all(ReplaySource(handbook_csv, mapping="handbook", batch_rows=5))

    def refuse(*args, **kwargs):
        raise pa.ArrowInvalid("refused on purpose")

    monkeypatch.setattr(csv_rows.pa_csv, "read_csv", refuse)
    slow = read_all(ReplaySource(handbook_csv, mapping="handbook", batch_rows=5))
    pd.testing.assert_frame_equal(fast[0], slow[0])
    pd.testing.assert_frame_equal(fast[1], slow[1])
    assert fast[2] == slow[2]


def test_write_dataset_gzip_round_trip(tmp_path):
    batches = sample_batches()
    path = tmp_path / "out.csv.gz"
    assert write_dataset(iter(batches), path) == 5
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    frame, dead, _ = read_all(ReplaySource(path))
    assert len(dead) == 0
    pd.testing.assert_frame_equal(frame, pd.concat(batches, ignore_index=True))
