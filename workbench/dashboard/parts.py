"""Small building blocks shared by the pages: read-only tables, the band formatter, and
running a coroutine on the session's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from panel.io.state import set_curdoc

from workbench.dashboard import clock, safe
from workbench.dashboard.theme import BAND_COLORS, ID_FORMATTER, MONEY_FORMATTER

# Time columns and the clock they show, unless a table says otherwise (``times``).
EVENT_COLUMNS = {"time": clock.EVENT, "ts": clock.EVENT}

# ``<%- value %>`` is escaped by the template engine (``<%= %>`` would insert it as HTML); the
# colour expression yields one of our constants only.
_BAND_TEMPLATE = (
    "<span style=\"color:<%= value == 'High' ? '{High}' : (value == 'Medium' ? '{Medium}' : "
    "'{Low}') %>;font-weight:600\"><%- value %></span>"
).format(**BAND_COLORS)


def band_formatter() -> HTMLTemplateFormatter:
    """Colours the band column by value (a formatter: cheap on a streaming table)."""
    return safe.template_formatter(_BAND_TEMPLATE)


def read_only_table(
    frame: pd.DataFrame,
    css: str,
    height: int,
    *,
    times: Mapping[str, str] | None = None,
    **options,
) -> pn.widgets.Tabulator:
    """A Tabulator that users read but do not edit; ``css`` names it for tests and styling.
    A ``band`` column (now or in later values) is coloured by :func:`band_formatter`; an
    ``amount`` column is shown as money (two decimals, thousands separated), an ``id`` column
    as plain digits. Cells are text
    (Bokeh's ``StringFormatter``); column titles are escaped (:func:`escape_titles`) and a
    time column is titled with its clock and the display zone (``times``: column -> clock
    or name, default ``time``/``ts`` -> "event time (UTC)"). A table wider than the page scrolls
    horizontally inside itself (``fit_data_fill``: columns keep their content width), so
    narrow screens do not clip columns or widen the page."""
    table = pn.widgets.Tabulator(
        frame,
        show_index=False,
        disabled=True,
        height=height,
        sizing_mode="stretch_width",
        formatters={"band": band_formatter(), "amount": MONEY_FORMATTER, "id": ID_FORMATTER},
        css_classes=[css],
        **{"layout": "fit_data_fill", **options},
    )
    times = EVENT_COLUMNS if times is None else times
    escape_titles(table, times)
    table.param.watch(lambda _e: escape_titles(table, times), "value")
    return table


def escape_titles(table: pn.widgets.Tabulator, times: Mapping[str, str] = EVENT_COLUMNS) -> None:
    """Tabulator sets a column title as HTML (``innerHTML``): a column named from data (a
    rule id, a band) is given its escaped name as title. Constant names escape to
    themselves, so only time columns (``times``: column -> clock, titled with the display
    zone by :func:`~workbench.dashboard.clock.label`) get a title."""
    names = [str(c) for c in table.value.columns] if table.value is not None else []
    titles = {c: clock.label(times[c]) if c in times else safe.escape(c) for c in names}
    titles = {c: t for c, t in titles.items() if t != c}
    if titles != (table.titles or {}):
        table.titles = titles


def schedule(coroutine_fn: Callable[[], Awaitable[None]]) -> None:
    """Run ``coroutine_fn`` on the current session's event loop (or now, outside a server,
    e.g. in tests and notebooks).

    The session's document is made current for the whole coroutine: components created in it
    then take their resources from this server, not from Panel's CDN (which an offline
    machine cannot reach).
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        asyncio.run(coroutine_fn())
        return

    async def in_session() -> None:
        with set_curdoc(doc):
            await coroutine_fn()

    pn.state.execute(in_session)
