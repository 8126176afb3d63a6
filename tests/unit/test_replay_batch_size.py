"""A replay picks its batch size from the input unless the user set ``batch_rows``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.cli.run_cmd import replay_options
from workbench.settings import Settings
from workbench.sources.replay import (
    AUTO_BATCH_MAX,
    PACED_BATCH_SECONDS,
    ReplaySource,
    auto_batch_rows,
    write_dataset,
)

LINE = "t{i},2026-01-01 00:00:00,card{i},term1,12.50\n"


def csv_file(path: Path, rows: int) -> Path:
    with open(path, "w") as fh:
        fh.write("tx_id,ts,card_id,terminal_id,amount\n")
        fh.writelines(LINE.format(i=i) for i in range(rows))
    return path


def test_the_settings_know_a_default_from_a_given_value() -> None:
    assert not Settings.load({}).is_set("batch_rows")
    assert Settings.load({"WORKBENCH_BATCH_ROWS": "1000"}).is_set("batch_rows")
    assert Settings.load({}, batch_rows=1000).is_set("batch_rows")
    assert Settings.load({}).replace(batch_rows=1000).is_set("batch_rows")
    assert not Settings.load({}).replace(rate=5).is_set("batch_rows")


def test_a_big_file_unpaced_gets_big_batches(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "big.csv", 200_000)
    assert auto_batch_rows(path, rate=None, settings=Settings.load({})) == AUTO_BATCH_MAX


def test_a_small_file_keeps_the_default(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "small.csv", 3_000)
    assert auto_batch_rows(path, rate=None, settings=Settings.load({})) == 1000


def test_a_middle_sized_file_is_read_in_about_eight_batches(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "mid.csv", 40_000)
    chosen = auto_batch_rows(path, rate=None, settings=Settings.load({}))
    assert 4_000 <= chosen <= 6_000  # an estimate from the first lines' length


def test_a_gzipped_file_is_estimated_from_its_uncompressed_lines(tmp_path: Path) -> None:
    rows = 120_000
    frame = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(rows)],
            "ts": "2026-01-01 00:00:00",
            "card_id": [f"card{i % 997}" for i in range(rows)],
            "amount": "12.50",
        }
    )
    write_dataset([frame], tmp_path / "x.csv.gz")
    chosen = auto_batch_rows(tmp_path / "x.csv.gz", rate=None, settings=Settings.load({}))
    assert 10_000 <= chosen <= AUTO_BATCH_MAX  # compressed size alone would say ~2,000


def test_a_parquet_file_counts_its_rows_exactly(tmp_path: Path) -> None:
    rows = 100_000
    frame = pd.DataFrame({"tx_id": [f"t{i}" for i in range(rows)], "amount": ["1.00"] * rows})
    write_dataset([frame], tmp_path / "x.parquet")
    chosen = auto_batch_rows(tmp_path / "x.parquet", rate=None, settings=Settings.load({}))
    assert chosen == rows // 8


def test_a_paced_replay_gets_batches_of_a_fraction_of_a_second(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "big.csv", 200_000)
    settings = Settings.load({})
    assert auto_batch_rows(path, rate=10_000, settings=settings) == 10_000 * PACED_BATCH_SECONDS
    assert auto_batch_rows(path, rate=200, settings=settings) == 20
    assert auto_batch_rows(path, rate=1e7, settings=settings) == AUTO_BATCH_MAX
    assert auto_batch_rows(path, rate=1, settings=settings) == 1


def test_standard_input_unpaced_keeps_the_default() -> None:
    assert auto_batch_rows("-", rate=None, settings=Settings.load({})) == 1000


@pytest.mark.parametrize("rate", [None, 10_000])
def test_a_batch_size_the_user_set_is_kept(tmp_path: Path, rate) -> None:
    path = csv_file(tmp_path / "big.csv", 200_000)
    for settings in (
        Settings.load({"WORKBENCH_BATCH_ROWS": "1000"}),
        Settings.load({}).replace(batch_rows=250),
    ):
        assert auto_batch_rows(path, rate=rate, settings=settings) == settings.batch_rows


def test_workbench_run_gives_the_source_the_chosen_size(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "big.csv", 200_000)
    options = replay_options(str(path), Settings.load({}), rate=None)
    assert options["batch_rows"] == AUTO_BATCH_MAX
    with ReplaySource(**options) as src:
        first = src.next_batch()
        assert first is not None and first.records == AUTO_BATCH_MAX
    explicit = replay_options(str(path), Settings.load({}, batch_rows=700), rate=None)
    assert explicit["batch_rows"] == 700
