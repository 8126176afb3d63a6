"""The challenger rule set: scored on live traffic beside the active one, never alerting.

``shadow_rule_sets`` is append-only: its newest row is the challenger in effect (a row with
no version: none) with its ``rollout``, the percent of cards it decides for
(:mod:`workbench.scoring.rollout`; 0: it only scores in the shadow). Setting, clearing,
rolling out and promoting it take the rule-set publication lock and ``NOTIFY
workbench_rules, 'shadow:<version>'`` in the same transaction, so every worker's rule
follower re-reads it once committed. :func:`promote` makes the challenger the active rule
set (an accepted ``rule_sets`` row with its files, :func:`rule_sets.publish`) and clears it,
in one transaction with the caller's audit row.

``shadow_scores`` holds, per transaction, the verdict of the set that did not decide it
(score, band, hits, version): the challenger's, or under a rollout, for the cards the
challenger decides for, the active set's. Written by the batch write
(:mod:`workbench.storage.writer`), read back here as aggregates only (:func:`compare`),
each side put back where it belongs by its version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from workbench.errors import ConfigError
from workbench.storage import rule_sets, tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, one, raw

__all__ = ["clear", "compare", "current", "files", "promote", "set_rollout", "set_shadow"]

SHADOW_PREFIX = "shadow:"  # NOTIFY payload on the rules channel: the challenger changed

_S = tables.shadow_rule_sets


def current(source: Source) -> dict[str, Any] | None:
    """The challenger in effect: id, version, files, author, created_at, rollout (percent of
    cards it decides for); None when none."""
    s = _S.c
    query = sa.select(s.id, s.version, s.files, s.author, s.created_at, s.rollout)
    query = query.order_by(s.id.desc()).limit(1)
    row = one(source, query, "cannot read the shadow rule set", optional=True)
    if row is None or row[1] is None:
        return None
    rid, version, files, author, created_at, rollout = row
    return {
        "id": int(rid),
        "version": version,
        "files": {str(k): str(v) for k, v in (files or {}).items()},
        "author": author,
        "created_at": created_at,
        "rollout": int(rollout),
    }


@contextmanager
def _locked(source: Source, failure: str) -> Iterator[tuple[Any, dict | None]]:
    """A transaction holding the rule-set publication lock, and the challenger in effect
    read under it; storage errors become ``failure``."""
    with raw(source) as conn, storage_errors(failure), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (rule_sets._RULE_SETS_LOCK,))
        yield conn, current(conn)


def _append(
    conn: Any,
    version: str | None,
    files: Mapping[str, str] | None,
    author: str | None,
    rollout: int = 0,
) -> int:
    row = conn.execute(
        "INSERT INTO shadow_rule_sets (version, files, author, rollout)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (version, None if files is None else Jsonb(dict(files)), author, rollout),
    ).fetchone()
    conn.execute(
        "SELECT pg_notify(%s, %s)", (rule_sets.RULES_CHANNEL, f"{SHADOW_PREFIX}{version or ''}")
    )
    return int(row[0])


def check_rollout(value: Any) -> int:
    """``value`` as a rollout percent (a whole number 0..100); ConfigError otherwise."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if not 0 <= number <= 100 or str(value).strip() != str(number):
        raise ConfigError(f"a rollout is a whole percent from 0 to 100, not {str(value)[:40]!r}")
    return number


def set_shadow(
    source: Source,
    version: str,
    files: Mapping[str, str],
    author: str | None,
    *,
    on_record: Callable[[Any, int, dict | None], None] | None = None,
    rollout: int = 0,
) -> int:
    """Make rule set ``version`` (its ``files``, checked by the caller) the challenger,
    deciding for ``rollout`` percent of the cards; the row's id. ``on_record(conn, row_id,
    replaced)`` writes in the same transaction."""
    rollout = check_rollout(rollout)
    with _locked(source, "cannot set the shadow rule set") as (conn, replaced):
        row_id = _append(conn, version, files, author, rollout)
        if on_record is not None:
            on_record(conn, row_id, replaced)
    return row_id


def set_rollout(
    source: Source,
    rollout: int,
    author: str | None,
    *,
    on_record: Callable[[Any, int, dict], None] | None = None,
    expected: str | None = None,
) -> dict:
    """Let the challenger in effect decide for ``rollout`` percent of the cards (a new row,
    same version and files); the challenger as it was before. ``on_record(conn, row_id,
    before)`` writes in the same transaction (the audit row). ConfigError for a rollout
    outside 0..100, when there is no challenger, or when ``expected`` (the version the user
    was shown) is no longer the challenger."""
    rollout = check_rollout(rollout)
    with _locked(source, "cannot set the shadow rollout") as (conn, challenger):
        _check_expected(challenger, expected, "rollout unchanged")
        row_id = _append(conn, challenger["version"], challenger["files"], author, rollout)
        if on_record is not None:
            on_record(conn, row_id, challenger)
    return challenger


def _check_expected(challenger: dict | None, expected: str | None, nothing: str) -> None:
    if challenger is None:
        raise ConfigError(f"no shadow rule set in effect: {nothing}")
    if expected is not None and challenger["version"] != expected:
        raise ConfigError(
            f"the shadow rule set is now {challenger['version']}, not {expected}: "
            f"{nothing} (review it again)"
        )


def clear(
    source: Source,
    author: str | None,
    *,
    on_record: Callable[[Any, int, dict | None], None] | None = None,
) -> dict | None:
    """Stop shadow scoring; the challenger it replaced (None: there was none, nothing
    written)."""
    with _locked(source, "cannot clear the shadow rule set") as (conn, replaced):
        if replaced is None:
            return None
        row_id = _append(conn, None, None, author)
        if on_record is not None:
            on_record(conn, row_id, replaced)
    return replaced


def promote(
    source: Source,
    author: str | None,
    *,
    on_record: Callable[[Any, dict, dict | None], None] | None = None,
    expected: str | None = None,
) -> dict:
    """Make the challenger the active rule set and clear it, in one transaction; the
    challenger promoted. ``on_record(conn, challenger, replaced_active)`` writes in that
    transaction (the audit row). ConfigError when there is no challenger, or when
    ``expected`` (the version the user was shown) is no longer the challenger."""
    with _locked(source, "cannot promote the shadow rule set") as (conn, challenger):
        if challenger is None:
            raise ConfigError("no shadow rule set to promote")
        _check_expected(challenger, expected, "nothing promoted")
        replaced = rule_sets.active(conn)
        rule_sets.publish(conn, challenger["version"], challenger["files"], author, "accepted")
        _append(conn, None, None, author)
        if on_record is not None:
            on_record(conn, challenger, replaced)
    return challenger


def files(source: Source, version: str) -> dict[str, str] | None:
    """The YAML files (name -> text) of the newest challenger row of ``version`` (a
    challenger set from rule files may never have been accepted: what explains the
    transactions it decided under a rollout)."""
    s = _S.c
    query = sa.select(s.files).where(s.version == version).order_by(s.id.desc()).limit(1)
    row = one(source, query, "cannot read the shadow rule set's files", optional=True)
    if row is None or row[0] is None:
        return None
    return {str(k): str(v) for k, v in row[0].items()}


def stored_versions(source: Source) -> list[str]:
    """Challenger versions with stored scores, newest first."""
    with raw(source) as conn, storage_errors("cannot read shadow scores"):
        rows = conn.execute(
            "SELECT rule_set_version FROM shadow_scores GROUP BY 1 ORDER BY max(ts) DESC"
        ).fetchall()
    return [r[0] for r in rows]


# The transactions both sets scored: the challenger's side is the one that carries its
# version — ``shadow_scores`` in the shadow, ``transactions`` for the cards a rollout let it
# decide (the active set's verdict then in ``shadow_scores``); simulator truth (is_fraud) and
# the current analyst label beside.
_PAIRS = """
WITH j AS (
    SELECT CASE WHEN d.decided THEN s.band ELSE t.band END AS a_band,
           CASE WHEN d.decided THEN t.band ELSE s.band END AS s_band,
           CASE WHEN d.decided THEN s.rule_hits ELSE t.rule_hits END AS a_hits,
           CASE WHEN d.decided THEN t.rule_hits ELSE s.rule_hits END AS s_hits,
           t.is_fraud AS truth, l.label AS analyst
    FROM shadow_scores s JOIN transactions t ON t.tx_id = s.tx_id AND t.ts = s.ts
    CROSS JOIN LATERAL (SELECT t.rule_set_version = %(version)s AS decided) d
    LEFT JOIN LATERAL (SELECT label FROM labels
                       WHERE labels.tx_id = s.tx_id AND labels.source = 'analyst'
                       ORDER BY id DESC LIMIT 1) l ON true
    WHERE (s.rule_set_version = %(version)s OR t.rule_set_version = %(version)s)
      AND s.rule_set_version <> t.rule_set_version
      AND (%(since)s::timestamptz IS NULL OR s.ts >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR s.ts < %(until)s::timestamptz)
), sides AS (
    SELECT 'active' AS side, a_band AS band, a_hits AS hits, truth, analyst FROM j
    UNION ALL
    SELECT 'shadow', s_band, s_hits, truth, analyst FROM j
)
"""
_COUNTS = """count(*),
    count(*) FILTER (WHERE truth), count(*) FILTER (WHERE truth IS NOT NULL),
    count(*) FILTER (WHERE analyst = 'fraud'), count(*) FILTER (WHERE analyst IS NOT NULL)"""
_MIGRATION = _PAIRS + "SELECT a_band, s_band, count(*) FROM j GROUP BY 1, 2"
_RULES = (
    _PAIRS + f"SELECT side, k, {_COUNTS} FROM sides CROSS JOIN LATERAL jsonb_object_keys(hits) k"
    " GROUP BY 1, 2"
)
_BANDS = _PAIRS + f"SELECT side, band, {_COUNTS} FROM sides GROUP BY 1, 2"
_COUNT_NAMES = ["rows", "sim_fraud", "sim_known", "analyst_fraud", "analyst_labelled"]


def compare(
    source: Source,
    version: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, pd.DataFrame]:
    """Aggregates over the transactions challenger ``version`` scored with ``since <= ts <
    until``, in the shadow or deciding (a rollout): ``migration`` (active band, shadow band,
    rows), ``rules`` (side, rule_id and the counts below) and ``bands`` (side, band, counts);
    side ``active`` is the active set's verdict, ``shadow`` the challenger's, wherever each
    was stored. Counts: rows, sim_fraud / sim_known (simulator truth), analyst_fraud /
    analyst_labelled (current analyst labels)."""
    params = {"version": version, "since": since, "until": until}
    with raw(source) as conn, storage_errors("cannot compare the shadow rule set"):
        migration = conn.execute(_MIGRATION, params).fetchall()
        rules = conn.execute(_RULES, params).fetchall()
        bands = conn.execute(_BANDS, params).fetchall()
    return {
        "migration": frame_of(migration, ["active_band", "shadow_band", "rows"]),
        "rules": frame_of(rules, ["side", "rule_id", *_COUNT_NAMES]),
        "bands": frame_of(bands, ["side", "band", *_COUNT_NAMES]),
    }


def frame_of(rows: list, names: list[str]) -> pd.DataFrame:
    """``rows`` as a frame: counts int64, the rest text."""
    frame = pd.DataFrame(rows, columns=names)
    for name in names:
        if name in ("rows", *_COUNT_NAMES):
            frame[name] = frame[name].astype("int64")
        else:
            frame[name] = frame[name].astype("str")
    return frame
