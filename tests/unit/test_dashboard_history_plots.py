"""History plots after the UI review: each plot its own y axis, named series, labelled
event time, and a card drill-down that does not take over the range scatter's x axis."""

from __future__ import annotations

from datetime import timedelta

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.plotting import figure as Figure

from workbench.dashboard import clock
from workbench.dashboard.history import _plots, _points


def buckets(n: int = 20) -> pd.DataFrame:
    t = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame(
        {
            "bucket": t,
            "transactions": 1000,
            "low": 980,
            "medium": 15,
            "high": 5,
            "mean_score": np.linspace(10, 20, n),
            "p95_score": np.linspace(60, 80, n),
            "alerts": 5,
            "fraud": 1,
        }
    )


def rendered(pane) -> object:
    return hv.render(pane.object, backend="bokeh")


def figures_on_one_page(*panes) -> dict[str, Figure]:
    """The Bokeh figures as Panel lays them out together (where it links shared axes)."""
    root = pn.Column(*panes).get_root()
    return {f.title.text: f for f in root.select({"type": Figure})}


def test_score_and_alert_plots_have_their_own_y_axes_and_named_series():
    panes = list(_plots({"buckets": buckets(), "points": None}))
    bands, scores_pane, alerts_pane = panes[0], panes[1], panes[2]
    page = figures_on_one_page(bands, scores_pane, alerts_pane)
    scores, alerts = page["Risk score (mean, p95)"], page["Alerts opened and labelled fraud"]
    assert scores.y_range is not alerts.y_range  # linked, alerts were squeezed flat
    labels = {item.label["value"] for item in alerts.legend[0].items}
    assert labels == {"alerts opened", "labelled fraud"}
    assert {i.label["value"] for i in scores.legend[0].items} == {"mean score", "p95 score"}
    assert "Variable" not in (scores.legend[0].title or "")
    assert scores.xaxis[0].axis_label == clock.label()
    fig = rendered(bands)
    assert {i.label["value"] for i in fig.legend[0].items} == {"Low", "Medium", "High"}


def test_the_card_scatter_does_not_share_the_range_scatter_x_axis():
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "ts": [t0 + timedelta(minutes=i) for i in range(10)],
            "amount": np.arange(10.0),
            "band": ["Low"] * 9 + ["High"],
            "tx_id": [f"t{i}" for i in range(10)],
            "card_id": "c1",
            "risk_score": 1.0,
        }
    )
    page = figures_on_one_page(
        pn.pane.HoloViews(_points(frame, "all")), pn.pane.HoloViews(_points(frame.iloc[:3], "card"))
    )
    whole, card = page["all"], page["card"]
    assert whole.x_range is not card.x_range
    assert card.xaxis[0].axis_label == clock.label()
