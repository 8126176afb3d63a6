"""The audit trail from a notebook: :func:`audit_log`, newest first, as a DataFrame.

>>> # from workbench.analysis import audit_log
>>> # audit_log(since="2026-01-01", action="rules.")        # every rule publish / rollback
>>> # audit_log(actor="alice", outcome="refused")          # what alice tried and may not
>>> # audit_log(limit=50)[["at", "actor", "action", "object", "outcome"]]

Reading needs nothing but the database: what a notebook may see is decided by the database
role it connects with (the dashboard's Audit tab is for admins only and checks the role).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from workbench.analysis.database import database_url
from workbench.storage import audit, shared_store

__all__ = ["audit_log"]


def audit_log(
    since: datetime | str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    limit: int = 1000,
    *,
    dsn: str | None = None,
    conn=None,
) -> pd.DataFrame:
    """Audit rows, newest first: who did (or was refused) what, when and from where.

    Columns: ``id``, ``at`` (UTC), ``actor`` (the login name; ``files:<os user>`` for a rule
    file edited on disk), ``role``, ``provider`` (``basic``, ``oauth``, ``local``, ``cli``,
    ``pipeline``), ``address``, ``action`` (``alert.dispose``, ``rules.publish``,
    ``rules.rollback``, ...), ``object`` (``alert 123``, ``rule_set <version>``),
    ``outcome`` (``ok``, ``refused``, ``failed``), ``before`` / ``after`` (dicts: the state
    the action changed) and ``detail``.

    Filters: ``since`` (a time; naive times are UTC), ``actor`` (exact), ``action`` (a
    prefix: ``"rules."`` is every rule action), ``outcome``; at most ``limit`` rows. The
    database is :func:`~workbench.analysis.database_url`'s unless ``dsn`` or ``conn`` is given.
    """
    when = None
    if since is not None:
        ts = pd.Timestamp(since)
        when = (
            ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        ).to_pydatetime()
    source = conn if conn is not None else shared_store(dsn or database_url())
    return audit.recent(source, limit, actor=actor, action=action, outcome=outcome, since=when)
