"""The analysts' writes to cases: claim, release, assign, status, note, close.

Each takes a psycopg connection inside the caller's transaction (the audit row goes in the
same one: :class:`~workbench.dashboard.actions.Actions`) and returns ``before``/``after``
for it. Re-exported by :mod:`workbench.storage.cases` (``cases.claim``...).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from workbench.errors import StorageError
from workbench.storage.alerting import card_bucket_lock
from workbench.storage.alerts import DISPOSITIONS

__all__ = [
    "MAX_NOTE",
    "CaseHeld",
    "claim",
    "clean_text",
    "close",
    "note",
    "release",
    "set_assignee",
    "set_status",
]

ACTIVE = ("open", "investigating")
MAX_NOTE = 2000  # characters of a note or an outcome comment


class CaseHeld(StorageError):
    """A claim refused: another analyst holds the case (``holder``)."""

    def __init__(self, case_id: int, holder: str) -> None:
        super().__init__(f"case {case_id} is held by {holder}")
        self.case_id, self.holder = case_id, holder


# -- writes (inside the caller's transaction) -------------------------------------------

_STATE = ("status", "assignee", "outcome")


def _event(conn: psycopg.Connection, case_id: int, kind: str, actor: str, detail: dict) -> None:
    conn.execute(
        "INSERT INTO case_events (case_id, kind, actor, detail) VALUES (%s, %s, %s, %s)",
        (int(case_id), kind, actor, Jsonb(detail)),
    )


def _locked(conn: psycopg.Connection, case_id: int) -> dict:
    row = conn.execute(
        "SELECT status, assignee, outcome, card_id FROM cases WHERE id = %s FOR UPDATE",
        (int(case_id),),
    ).fetchone()
    if row is None:
        raise StorageError(f"no case {int(case_id)}")
    return dict(zip((*_STATE, "card_id"), row, strict=True))


def _change(before: dict, **after: Any) -> dict:
    old = {k: before[k] for k in _STATE}
    return {"before": old, "after": {**old, **after}}


def clean_text(text: str | None, what: str = "note") -> str | None:
    """User text bounded and without control characters (newline and tab kept); None/blank
    stays None. Escaping is the page's job (:mod:`workbench.dashboard.safe`)."""
    if text is None or not str(text).strip():
        return None
    text = str(text)
    if len(text) > MAX_NOTE:
        raise StorageError(f"the {what} is longer than {MAX_NOTE} characters")
    bad = [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 127 <= ord(ch) < 160]
    if bad:
        raise StorageError(f"the {what} contains control characters")
    return text.strip()


def claim(conn: psycopg.Connection, case_id: int, user: str) -> dict:
    """Take the case for ``user``: one atomic UPDATE that succeeds only while it is free or
    ``user``'s already. :class:`CaseHeld` names the holder otherwise."""
    row = conn.execute(_CLAIM, {"u": user, "id": int(case_id)}).fetchone()
    if row is None:
        current = _locked(conn, case_id)
        if current["status"] == "closed":
            raise StorageError(f"case {int(case_id)} is closed")
        raise CaseHeld(int(case_id), str(current["assignee"]))
    before = dict(zip(_STATE, row, strict=True))
    if before["assignee"] != user:
        _event(conn, case_id, "claim", user, {})
    return {"before": before, "after": {**before, "assignee": user}}


# The old values from a locked read in the same statement (RETURNING sees only new ones); the
# lock waits for a concurrent claim, and the condition is then checked on its result.
_CLAIM = """
WITH old AS (SELECT id, status, assignee, outcome FROM cases WHERE id = %(id)s FOR UPDATE)
UPDATE cases c SET assignee = %(u)s, claimed_at = now(), updated_at = now()
FROM old
WHERE c.id = old.id AND c.status <> 'closed' AND (c.assignee IS NULL OR c.assignee = %(u)s)
RETURNING old.status, old.assignee, old.outcome
"""


def release(conn: psycopg.Connection, case_id: int, user: str, *, anyone: bool = False) -> dict:
    """Give the case back: only its holder may (``anyone``: an admin releasing another's)."""
    current = _locked(conn, case_id)
    if current["assignee"] is None:
        raise StorageError(f"case {int(case_id)} is not claimed")
    if current["assignee"] != user and not anyone:
        raise CaseHeld(int(case_id), str(current["assignee"]))
    conn.execute(
        "UPDATE cases SET assignee = NULL, claimed_at = NULL, updated_at = now() WHERE id = %s",
        (int(case_id),),
    )
    _event(conn, case_id, "release", user, {"holder": current["assignee"]})
    return _change(current, assignee=None)


def set_assignee(conn: psycopg.Connection, case_id: int, assignee: str, by: str) -> dict:
    """Give the case to ``assignee`` (the caller decides who may)."""
    current = _locked(conn, case_id)
    if current["status"] == "closed":
        raise StorageError(f"case {int(case_id)} is closed")
    conn.execute(
        "UPDATE cases SET assignee = %s, claimed_at = now(), updated_at = now() WHERE id = %s",
        (assignee, int(case_id)),
    )
    _event(conn, case_id, "assign", by, {"from": current["assignee"], "to": assignee})
    return _change(current, assignee=assignee)


def set_status(conn: psycopg.Connection, case_id: int, status: str, by: str) -> dict:
    """Move an active case to 'open' or 'investigating' (closing is :func:`close`)."""
    if status not in ACTIVE:
        raise StorageError(f"status must be one of {', '.join(ACTIVE)} (close with an outcome)")
    current = _locked(conn, case_id)
    if current["status"] == "closed":
        raise StorageError(f"case {int(case_id)} is closed")
    conn.execute(
        "UPDATE cases SET status = %s, updated_at = now() WHERE id = %s", (status, int(case_id))
    )
    _event(conn, case_id, "status", by, {"from": current["status"], "to": status})
    return _change(current, status=status)


def note(conn: psycopg.Connection, case_id: int, text: str, by: str) -> dict:
    """Add a note to the case's timeline."""
    body = clean_text(text)
    if body is None:
        raise StorageError("the note is empty")
    current = _locked(conn, case_id)
    _event(conn, case_id, "note", by, {"text": body})
    conn.execute("UPDATE cases SET updated_at = now() WHERE id = %s", (int(case_id),))
    return {"before": {k: current[k] for k in _STATE}, "after": {"note": body}}


def close(
    conn: psycopg.Connection, case_id: int, outcome: str, by: str, comment: str | None = None
) -> tuple[dict, list[int]]:
    """Close the case with ``outcome`` and its open alerts with the same disposition
    (assignee ``by``). Takes the card's batch lock first, so a batch cannot attach a hit
    to an alert being closed. Returns the change and the ids of the alerts closed."""
    if outcome not in DISPOSITIONS:
        raise StorageError(f"unknown outcome {outcome!r}: use one of {', '.join(DISPOSITIONS)}")
    body = clean_text(comment, "comment")
    card = conn.execute("SELECT card_id FROM cases WHERE id = %s", (int(case_id),)).fetchone()
    if card is None:
        raise StorageError(f"no case {int(case_id)}")
    with conn.cursor() as cur:
        card_bucket_lock(cur, card[0])
    current = _locked(conn, case_id)
    if current["status"] == "closed":
        raise StorageError(f"case {int(case_id)} is closed already")
    conn.execute(
        "UPDATE cases SET status = 'closed', outcome = %s, closed_at = now(), updated_at = now(),"
        " assignee = coalesce(assignee, %s) WHERE id = %s",
        (outcome, by, int(case_id)),
    )
    closed = [
        r[0]
        for r in conn.execute(
            "UPDATE alerts SET status = 'closed', disposition = %s, assignee = %s,"
            " notes = coalesce(%s, notes), closed_at = now(), updated_at = now()"
            " WHERE case_id = %s AND status = 'open' RETURNING id",
            (outcome, by, body, int(case_id)),
        )
    ]
    _event(conn, case_id, "close", by, {"outcome": outcome, "comment": body, "alerts": closed})
    change = _change(current, status="closed", outcome=outcome)
    change["after"]["assignee"] = current["assignee"] or by
    return change, sorted(closed)
