"""What the live page shows of newly arrived rows, prepared once per server process.

The hub calls these on the feed's thread as rows arrive (see
:class:`~workbench.dashboard.hub.Hub`), so the formatting of the live table's rows, the
alert feed's rows and the map's points is done once however many sessions show them, and
off the server's event loop: a session only streams the result.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.dashboard.live_map import map_points
from workbench.dashboard.live_tables import FEED_ROWS, TABLE_ROWS, feed_rows, table_rows
from workbench.storage.notify import HighRow


def prepare_rows(page: pd.DataFrame) -> dict[str, Any]:
    """A page of new stored rows (oldest first): ``table`` rows and ``map`` points (None:
    no row has a location)."""
    return {"table": table_rows(page.tail(TABLE_ROWS)), "map": map_points(page)}


def prepare_alerts(rows: list[HighRow]) -> pd.DataFrame:
    """A batch's High rows (oldest first) as alert-feed rows."""
    return feed_rows(rows[-FEED_ROWS:])
