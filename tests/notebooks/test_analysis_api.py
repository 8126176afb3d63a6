"""The notebook API without a kernel: finding the database, the bounded live streams, the
one-way live table, and ``workbench lab`` refusing bad arguments before any side effect."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.analysis import database_url
from workbench.analysis.live import SECOND_COLUMNS, LiveRun, OneWayTable
from workbench.cli.main import main
from workbench.dashboard.hub import SECONDS
from workbench.dashboard.live import table_rows
from workbench.errors import ConfigError
from workbench.settings import Settings


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKBENCH_DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)


def test_database_url_is_the_configured_one(no_database, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://analyst:secret@db.example:5433/fraud"
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    assert database_url() == url  # with its password: notebooks connect with it


def test_database_url_without_any_database_says_what_to_do(no_database, tmp_path) -> None:
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(ConfigError, match="workbench up"):
        database_url(Settings.load(), start=tmp_path / "notebooks")


def test_live_seconds_stream_is_bounded() -> None:
    run = LiveRun("dbname=unused", duration=1)  # nothing is started
    rows = SECONDS + 25
    frame = pd.DataFrame({c: [float(i) for i in range(rows)] for c in SECOND_COLUMNS})
    run.seconds.send(frame)
    assert len(run.seconds.data) == SECONDS
    assert run.seconds.data["t"].iloc[-1] == rows - 1  # the newest kept
    assert run.trend("rows") is not None


def test_one_way_table_keeps_the_newest_rows_newest_first() -> None:
    table = OneWayTable(table_rows(pd.DataFrame()), "live-transactions", 200)
    for start in (0, 3, 6):
        rows = pd.DataFrame({"time": [f"t{i}" for i in range(start, start + 3)]})
        table.stream(rows, rollover=5)
    assert list(table.value["time"]) == ["t4", "t5", "t6", "t7", "t8"]
    assert list(table.__panel__().object["time"]) == ["t8", "t7", "t6", "t5", "t4"]


def test_lab_refuses_a_bad_port_before_touching_the_database(
    no_database, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["lab", "--port", "70000"]) == 1
    assert "--port" in capsys.readouterr().err
    assert not (tmp_path / ".workbench").exists()  # no embedded server was started
