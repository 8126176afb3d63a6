"""ColumnMapping: YAML files, --map options, merging, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import SourceError
from workbench.sources.mapping import ColumnMapping, builtin_names
from workbench.sources.replay import ReplaySource

HANDBOOK_COLUMNS = [
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
]


def test_builtin_handbook_mapping():
    assert "handbook" in builtin_names()
    m = ColumnMapping.from_yaml("handbook")
    assert m.columns["card_id"] == m.columns["customer_id"] == "CUSTOMER_ID"
    assert set(m.columns.values()) <= set(HANDBOOK_COLUMNS)
    assert m.resolve(HANDBOOK_COLUMNS)["amount"] == "TX_AMOUNT"


def test_from_options():
    m = ColumnMapping.from_options(
        ["ts=when", " amount = eur ", "currency:=USD", "ts_format=epoch_ms"]
    )
    assert m.columns == {"ts": "when", "amount": "eur"}
    assert m.defaults == {"currency": "USD"} and m.ts_format == "epoch_ms"


def test_merged_lets_the_later_mapping_win():
    base = ColumnMapping({"amount": "A", "currency": "CUR"}, {"country": "FR"}, "%Y")
    over = ColumnMapping({"country": "CTRY"}, {"currency": "USD"}, ts_origin="2018-04-01")
    m = base.merged(over)
    assert m.columns == {"amount": "A", "country": "CTRY"}
    assert m.defaults == {"currency": "USD"}
    assert (m.ts_format, m.ts_origin) == (None, "2018-04-01")
    assert base.merged(ColumnMapping()).ts_format == "%Y"


def test_apply_renames_adds_defaults_and_parses_declared_time():
    raw = pd.DataFrame(
        {"id": ["1", "2"], "t": ["1700000000000", "soon"], "tx_id": ["x", "y"]}
    ).assign(card_id="c", amount="1")
    m = ColumnMapping({"tx_id": "id", "ts": "t"}, {"currency": "USD"}, ts_format="epoch_ms")
    out = m.apply(raw)
    assert out["tx_id"].tolist() == ["1", "2"]  # mapped beats the same-named file column
    assert out["ts"].iloc[0] == pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC")
    assert out["ts"].iloc[1] == "soon"  # left as text so the dead letter can quote it
    assert out["currency"].tolist() == ["USD", "USD"]


def one_line_error(make) -> str:
    with pytest.raises(SourceError) as info:
        make()
    text = str(info.value)
    assert "\n" not in text
    return text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def test_mapping_errors_are_one_line(tmp_path):
    frame = pd.DataFrame({c: ["1"] for c in HANDBOOK_COLUMNS})
    cases = {
        "did you mean 'amount'": lambda: ColumnMapping({"amout": "TX_AMOUNT"}),
        "unknown schema default 'curency'": lambda: ColumnMapping(defaults={"curency": "EUR"}),
        "did you mean 'columns'": lambda: ColumnMapping.from_yaml(write(tmp_path, "colums: {}")),
        f"{tmp_path / 'm.yaml'}: unknown schema column 'cardid'": lambda: ColumnMapping.from_yaml(
            write(tmp_path, "columns: {cardid: X}")
        ),
        "m.yaml:3: expected ',' or ']'": lambda: ColumnMapping.from_yaml(
            write(tmp_path, "columns:\n  a: [b\n")
        ),
        "'columns' must be a mapping": lambda: ColumnMapping.from_yaml(
            write(tmp_path, "columns: [a, b]")
        ),
        "expected a mapping with keys": lambda: ColumnMapping.from_yaml(write(tmp_path, "- a")),
        "built-in mappings: handbook": lambda: ColumnMapping.from_yaml("handbok"),
        "cannot read mapping": lambda: ColumnMapping.from_yaml(tmp_path / "none.yaml"),
        "both mapped and defaulted: currency": lambda: ColumnMapping(
            {"currency": "C"}, {"currency": "EUR"}
        ),
        "ts_origin is not a timestamp": lambda: ColumnMapping(ts_origin="the dawn of time"),
        "expected NAME=COLUMN": lambda: ColumnMapping.from_options(["amount"]),
        "must name a file column": lambda: ColumnMapping({"amount": ""}),
        "mapped column 'AMOUNT' (for amount) is not in the file; file columns: TRANSACTION_ID, "
        "TX_DATETIME": lambda: (
            ColumnMapping.from_yaml("handbook")
            .merged(ColumnMapping({"amount": "AMOUNT"}))
            .apply(frame)
        ),
    }
    for message, make in cases.items():
        assert message in one_line_error(make)


def test_a_bad_mapping_fails_when_the_source_opens_not_at_the_first_batch(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text(",".join(HANDBOOK_COLUMNS) + "\n")  # no rows at all
    pq_path = tmp_path / "d.parquet"
    pd.DataFrame({c: ["1"] for c in HANDBOOK_COLUMNS}).to_parquet(pq_path)
    wrong = ColumnMapping.from_yaml("handbook").merged(ColumnMapping({"tx_id": "TX_ID"}))
    for path in (csv, pq_path):
        text = one_line_error(lambda p=path: ReplaySource(p, mapping=wrong))
        assert "'TX_ID' (for tx_id) is not in the file" in text and "TX_FRAUD" in text
