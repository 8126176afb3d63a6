"""The served script: ``panel serve workbench/dashboard/app.py``. Kept tiny on purpose; each
session is built in :mod:`workbench.dashboard.session`."""

from workbench.dashboard.session import create_app

create_app().servable(title="Fraud Workbench")
