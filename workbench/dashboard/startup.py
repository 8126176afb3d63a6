"""``panel serve ... --setup workbench/dashboard/startup.py``: start the hub with the server.

Optional: without it the first session starts the hub. With it, the hub is already listening
(and holds the totals) when the first analyst opens the page.
"""

from workbench.dashboard.server import start_hub

start_hub()
