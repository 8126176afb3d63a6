"""The live page's row of KPIs: transactions, rate, % High, open alerts, mean score, latency.

Each KPI is a Panel indicator that wraps onto the next line when the page is narrow (two per
line on a phone); a value is set only when it changed, so an unchanged KPI costs nothing.
"""

from __future__ import annotations

import panel as pn

from workbench.dashboard import safe
from workbench.dashboard.hub import Kpis
from workbench.dashboard.theme import BAND_COLORS, fmt_number

KPI_WIDTH = 170  # two KPIs side by side on a 390 px phone


class KpiRow(pn.viewable.Viewer):
    """The KPIs of one session; ``kpi`` maps a name to its indicator (css class
    ``kpi-<name>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.kpi = {
            "processed": pn.indicators.Number(label="Transactions", value=0, format="{value:,}"),
            "tx_per_s": pn.indicators.Number(label="tx/s", value=0, format="{value:,.0f}"),
            "pct_high": pn.indicators.Number(
                label="% High (10 min)",
                value=0,
                format="{value:.2f}%",
                colors=[(1, BAND_COLORS["Low"]), (5, BAND_COLORS["Medium"]), (100, "#c62828")],
            ),
            "open_alerts": pn.indicators.Number(label="Open alerts", value=0, format="{value:,}"),
            "mean_score": pn.indicators.String(label="Mean score (10 min)", value="—"),
            "latency": pn.indicators.String(label="Latency p50 / p99", value="—"),
        }
        for key, widget in self.kpi.items():
            widget.css_classes = [f"kpi-{key}"]
            widget.param.update(font_size="24pt", title_size="11pt", width=KPI_WIDTH)
        self.kpi["latency"].width = 2 * KPI_WIDTH  # "1,234 / 5,678 ms"

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.FlexBox(*self.kpi.values(), sizing_mode="stretch_width")

    def update(self, k: Kpis) -> None:
        values = {
            "processed": k.processed,
            "tx_per_s": round(k.tx_per_s),
            "pct_high": round(k.pct_high, 2),
            "open_alerts": k.open_alerts,
            # pn.indicators.String puts its value into HTML as is: text goes through safe
            "mean_score": safe.text(fmt_number(k.mean_score, 1)),
            "latency": safe.html(
                "{} / {}", fmt_number(k.latency_p50_ms), fmt_number(k.latency_p99_ms, 0, " ms")
            ),
        }
        for key, value in values.items():
            if self.kpi[key].value != value:
                self.kpi[key].value = value
