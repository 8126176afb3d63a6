"""Why an alert fired, with numbers: the stored evidence of its transactions, and the card's
timeline around it.

``alert_evidence`` holds, per alerted transaction, what each fired rule read when it was
scored (:mod:`workbench.scoring.evidence`, written by the batch writer). :func:`of_alert`
returns it in long form — one row per (transaction, rule, name) — joined with the rule's
points from the alert hits. :func:`timeline` returns the card's transactions on both sides
of a moment (event time), keyset-bounded: at most ``before`` rows before and ``after`` rows
after, each side served by the ``(card_id, ts)`` index.

Through a store: ``store.evidence.of_alert(42)``, ``store.evidence.timeline("card7", at)``.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from workbench.storage import tables
from workbench.storage.frames import Source, fetch, one

__all__ = ["of_alert", "of_transaction", "timeline"]

_EVIDENCE_COLUMNS = ["tx_id", "ts", "rule_id", "points", "name", "value"]


def of_transaction(source: Source, tx_id: str) -> dict | None:
    """The stored evidence document ``{rule_id: {name: value}}`` of one transaction."""
    e = tables.alert_evidence.c
    row = one(
        source,
        sa.select(e.evidence).where(e.tx_id == tx_id),
        "cannot read the evidence",
        optional=True,
    )
    return None if row is None else row[0]


def of_alert(source: Source, alert_id: int, limit: int = 2000) -> pd.DataFrame:
    """Long frame of an alert's evidence, oldest transaction first: ``tx_id``, ``ts``,
    ``rule_id``, ``points``, ``name``, ``value`` (the JSON value: number, text, bool or
    None). Transactions stored before evidence was kept have no rows."""
    query = sa.text(
        """
        SELECT h.tx_id, h.ts, r.key AS rule_id, (h.rules ->> r.key)::double precision AS points,
               n.key AS name, n.value AS value
        FROM alert_hits h
        JOIN alert_evidence e ON e.tx_id = h.tx_id
        CROSS JOIN LATERAL jsonb_each(e.evidence) r
        CROSS JOIN LATERAL jsonb_each(r.value) n
        WHERE h.alert_id = :alert_id
        ORDER BY h.ts, h.tx_id, r.key, n.key
        LIMIT :limit
        """
    ).columns(
        sa.column("tx_id", sa.Text),
        sa.column("ts", sa.DateTime(timezone=True)),
        sa.column("rule_id", sa.Text),
        sa.column("points", sa.Double),
        sa.column("name", sa.Text),
        sa.column("value", tables.alert_evidence.c.evidence.type),
    )
    frame = fetch(
        source,
        query.bindparams(alert_id=int(alert_id), limit=int(limit)),
        "cannot read the evidence",
    )
    return frame[_EVIDENCE_COLUMNS] if len(frame) else pd.DataFrame(columns=_EVIDENCE_COLUMNS)


def timeline(source: Source, card_id: str, at: datetime, before: int = 50, after: int = 20):
    """The card's transactions around ``at`` (event time), oldest first: at most ``before``
    with ``ts <= at`` and ``after`` with ``ts > at``; the columns of ``transactions``."""
    t = tables.transactions
    earlier = (
        sa.select(*t.c)
        .where(t.c.card_id == card_id, t.c.ts <= at)
        .order_by(t.c.ts.desc(), t.c.tx_id.desc())
        .limit(int(before))
    )
    later = (
        sa.select(*t.c)
        .where(t.c.card_id == card_id, t.c.ts > at)
        .order_by(t.c.ts, t.c.tx_id)
        .limit(int(after))
    )
    frame = pd.concat(
        [
            fetch(source, earlier, "cannot read the card's timeline"),
            fetch(source, later, "cannot read the card's timeline"),
        ],
        ignore_index=True,
    )
    return frame.sort_values(["ts", "tx_id"], kind="stable").reset_index(drop=True)
