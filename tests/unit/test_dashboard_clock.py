"""The display time zone: times shown and date inputs read in it, every label naming it,
storage (UTC) untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from workbench.dashboard import clock
from workbench.dashboard.audit_page import COLUMNS as AUDIT_COLUMNS
from workbench.dashboard.audit_page import audit_rows
from workbench.dashboard.evidence import timeline_plot, timeline_rows
from workbench.dashboard.history import HistoryView, _points
from workbench.dashboard.live import feed_rows, table_rows
from workbench.dashboard.live_charts import _time_figure
from workbench.dashboard.parts import read_only_table
from workbench.dashboard.queue import CaseQueue, _rows
from workbench.errors import ConfigError
from workbench.storage.notify import HighRow

REPO = Path(__file__).resolve().parents[2]
SUMMER = pd.Timestamp("2026-07-01T10:00:00Z")  # 12:00 in Paris (CEST, +2)
WINTER = pd.Timestamp("2026-01-15T10:00:00Z")  # 11:00 in Paris (CET, +1)


@pytest.fixture
def paris():
    clock.configure("Europe/Paris")
    yield
    clock.configure(None)


def test_the_default_zone_is_utc_and_labels_name_it():
    clock.configure(None)
    assert clock.zone().key == "UTC"
    assert clock.label() == "event time (UTC)"
    assert clock.label(clock.WALL) == "wall clock (UTC)"
    assert clock.stamp(SUMMER) == "2026-07-01 10:00:00"


def test_an_unknown_zone_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="not a time zone: 'Mars/Olympus'") as info:
        clock.configure("Mars/Olympus")
    assert "\n" not in str(info.value)


def test_times_are_shown_in_the_zone_with_its_daylight_saving(paris):
    stored = pd.Series([SUMMER, WINTER, pd.NaT])
    shown = clock.stamp(stored)
    assert shown.iloc[:2].tolist() == ["2026-07-01 12:00:00", "2026-01-15 11:00:00"]
    assert pd.isna(shown.iloc[2])
    assert clock.stamp(pd.Series(["2026-07-01T10:00:00+00:00"])).tolist() == ["2026-07-01 12:00:00"]
    naive_utc = pd.Series([SUMMER.tz_localize(None)])  # naive stored times are UTC
    assert clock.stamp(naive_utc).tolist() == ["2026-07-01 12:00:00"]
    assert clock.label(clock.WALL) == "wall clock (Europe/Paris)"


def test_date_inputs_are_read_in_the_zone(paris):
    assert clock.from_input(datetime(2026, 7, 1, 12, 0)) == datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert clock.from_input(datetime(2026, 1, 15, 11, 0)) == datetime(2026, 1, 15, 10, tzinfo=UTC)
    aware = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
    assert clock.from_input(aware) == aware  # an instant keeps its instant
    assert clock.from_input(None) is None
    # 02:30 on 25 October happens twice in Paris: the first (CEST) is taken
    assert clock.from_input(datetime(2026, 10, 25, 2, 30)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    # and the other way: an input shows the zone's wall time
    assert clock.naive(SUMMER) == datetime(2026, 7, 1, 12, 0)


def test_plot_axes_get_the_zone_wall_time_point_by_point(paris):
    # across the October change: 00:30 UTC is 02:30 CEST, 01:30 UTC is 02:30 CET
    epoch = np.array(
        [pd.Timestamp(t).timestamp() for t in ("2026-10-25T00:30Z", "2026-10-25T01:30Z")]
    )
    shown = clock.axis_ms(epoch)
    assert (shown - epoch * 1000).tolist() == [2 * 3600e3, 3600e3]
    clock.configure("UTC")
    assert np.array_equal(clock.axis_ms(epoch), epoch * 1000)


def test_tables_title_their_time_columns_with_the_zone(paris):
    table = read_only_table(pd.DataFrame({"time": ["x"], "tx_id": ["t"]}), "t", 100)
    assert table.titles == {"time": "event time (Europe/Paris)"}
    audit = read_only_table(pd.DataFrame({"at": ["x"]}), "a", 100, times={"at": clock.WALL})
    assert audit.titles == {"at": "wall clock (Europe/Paris)"}


def test_every_page_shows_and_labels_the_zone(paris):
    hv.extension("bokeh")
    history = HistoryView("postgresql://unused")  # builds widgets only, reads nothing
    assert history.start.name == "From, event time (Europe/Paris)"
    queue = CaseQueue("postgresql://unused", "ann", can_close=True)
    assert queue.since.name == "Events since (Europe/Paris)"
    assert queue.table.titles["sla_due"] == "due (Europe/Paris)"

    cases = pd.DataFrame(
        {
            "id": [1], "status": ["open"], "band": ["High"], "max_score": [80.0],
            "card_id": ["c1"], "alert_count": [1], "hit_count": [2],
            "max_amount": [12.5], "currency": ["EUR"], "assignee": [None],
            "opened_at": [SUMMER], "sla_due": [SUMMER + timedelta(hours=2)], "rules": [{}],
        }
    )  # fmt: skip
    row = _rows(cases).iloc[0]
    assert (row["opened"], row["sla_due"]) == ("2026-07-01 12:00", "2026-07-01 14:00")

    at = pd.Timestamp(WINTER)
    card = pd.DataFrame(
        {
            "ts": [at - timedelta(minutes=5), at], "tx_id": ["a", "b"], "amount": [1.0, 2.0],
            "currency": ["EUR", "EUR"], "band": ["Low", "High"], "risk_score": [1.0, 90.0],
            "rule_hits": [{}, {"r": 50}],
        }
    )  # fmt: skip
    assert timeline_rows(card, at)["time"].tolist() == [
        "2026-01-15 10:55:00",
        "2026-01-15 11:00:00",
    ]
    fig = hv.render(timeline_plot(card, at, "c1"), backend="bokeh")
    assert fig.xaxis[0].axis_label == "event time (Europe/Paris)"
    assert "event time (Europe/Paris)" in fig.title.text

    scatter = card.assign(card_id="c1", amount=[1.0, 2.0])
    fig = hv.render(_points(scatter, "card"), backend="bokeh")
    assert fig.xaxis[0].axis_label == "event time (Europe/Paris)"

    audit = pd.DataFrame({c: [None] for c in AUDIT_COLUMNS} | {"at": [SUMMER], "id": [1]})
    assert audit_rows(audit)["at"].tolist() == ["2026-07-01 12:00:00"]

    live = pd.DataFrame(
        {
            "ts": [SUMMER], "tx_id": ["t"], "card_id": ["c"], "amount": [1.0],
            "merchant_category": ["m"], "country": ["FR"], "channel": ["pos"],
            "risk_score": [1.0], "band": ["Low"], "rule_hits": [{}],
        }
    )  # fmt: skip
    assert table_rows(live)["time"].tolist() == ["2026-07-01 12:00:00"]
    feed = feed_rows([HighRow(tx_id="t", ts="2026-07-01T10:00:00+00:00"), HighRow(tx_id="u")])
    assert feed["time"].tolist() == ["2026-07-01 12:00:00", ""]
    assert _time_figure("trend", "y").xaxis[0].axis_label == "wall clock (Europe/Paris)"


def test_panel_serve_stops_with_one_line_on_an_unknown_zone():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "PG"))}
    env.update(WORKBENCH_DISPLAY_TIMEZONE="Mars/Olympus", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "panel", "serve", "workbench/dashboard/app.py",
         "--setup", "workbench/dashboard/startup.py", "--port", "0", "--address", "127.0.0.1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [
        "error: invalid value 'Mars/Olympus' for WORKBENCH_DISPLAY_TIMEZONE: not a time zone: "
        "'Mars/Olympus' (use an IANA name such as UTC or Europe/Paris)"
    ]
