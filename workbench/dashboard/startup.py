"""``panel serve ... --setup workbench/dashboard/startup.py``: start the hub with the server.

Optional: without it the first session starts the hub. With it, the hub is already listening
(and holds the totals) when the first analyst opens the page, and a bad setting (an unknown
``WORKBENCH_DISPLAY_TIMEZONE``, no database...) stops the server at once with one line.
"""

import sys

from workbench.dashboard.server import start_hub
from workbench.errors import ConfigError

try:
    start_hub()
except ConfigError as exc:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
