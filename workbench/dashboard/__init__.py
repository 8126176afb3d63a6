"""Live Panel dashboards: a hub per server process, views built per browser session.

- :mod:`~workbench.dashboard.hub`      bounded aggregates of the pipeline's batch summaries;
- :mod:`~workbench.dashboard.feed`     the thread that LISTENs and keeps the hub current;
- :mod:`~workbench.dashboard.server`   the process's hub singleton and ``serve`` for ``up``;
- :mod:`~workbench.dashboard.session`  one session: pages and the periodic pull;
- :mod:`~workbench.dashboard.live`, :mod:`~workbench.dashboard.alerts_page`,
  :mod:`~workbench.dashboard.history`  the three pages (the live page composes its parts
  from the ``live_*`` modules: KPIs, charts, map, tables, health, toasts);
- :mod:`~workbench.dashboard.login`    the session's identity and the login's setup;
  :mod:`~workbench.dashboard.login_handlers` the login/logout pages behind Panel's auth;
- ``app.py`` / ``startup.py`` / ``auth.py``  what ``panel serve`` runs (``auth.py``: its
  ``--auth-module``).

Importing this package starts nothing.
"""
