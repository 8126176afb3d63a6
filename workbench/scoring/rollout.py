"""Percentage rollout of a challenger: it decides for a stable share of the cards.

A challenger with a rollout of X % decides for the cards whose *bucket* is below X: their
transactions are stored with the challenger's score, band, hits and version, raise and join
alerts through them, and carry its evidence; the active rule set's (the champion's) verdict
on those transactions goes to ``shadow_scores`` instead. Every other card stays with the
champion, the challenger's verdict in the shadow as before. So each transaction is scored by
both sets, one decides and the other is kept apart, and a card never changes sides while the
percentage stays (raising it only adds cards: bucket < X keeps those below the old X).

A card's bucket is ``(murmur2("rollout:" + card_id) & 0x7fffffff) % 100``: Kafka's murmur2
(:mod:`workbench.sources.partitioner`) of the card id with a prefix — the same in every
worker, batch and restart (unlike Python's salted ``hash``), and independent of the card's
Kafka partition, so each worker of a consumer group sees about X % of its cards roll out.

>>> bucket(["card-1", "card-1", "card-2"]).tolist()
[54, 54, 12]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench import schema
from workbench.scoring.result import Evaluation
from workbench.sources.partitioner import murmur2

BUCKETS = 100
_PREFIX = "rollout:"


def bucket(card_ids: Sequence[str] | pd.Series | pa.Array) -> np.ndarray:
    """The rollout bucket (0..99, int64) of each card id (a missing id counts as "")."""
    if isinstance(card_ids, pd.Series):
        keys = pa.array(card_ids.astype("str"), pa.string(), from_pandas=True)
    elif isinstance(card_ids, pa.Array):
        keys = card_ids.cast(pa.string())
    else:
        keys = pa.array(list(card_ids), pa.string())
    keys = pc.binary_join_element_wise(_PREFIX, pc.fill_null(keys, ""), "")
    return (murmur2(keys) & np.uint32(0x7FFFFFFF)).astype(np.int64) % BUCKETS


def arm(card_ids: pd.Series, percent: int) -> np.ndarray:
    """Per row, whether the challenger decides it at a rollout of ``percent``."""
    if percent <= 0 or not len(card_ids):
        return np.zeros(len(card_ids), dtype=bool)
    if percent >= BUCKETS:
        return np.ones(len(card_ids), dtype=bool)
    return bucket(card_ids) < percent


def split(active: Evaluation, challenger: Evaluation, rows: np.ndarray) -> tuple:
    """(decided, other): the evaluation that decides each row — the challenger's on
    ``rows``, the active set's elsewhere — and the one kept apart (the other way round).
    Both are mixed per row: ``scores``, ``hits`` and ``evidence`` hold, row by row, what the
    set on that side made of it; ``matrix`` and ``rule_ids`` (one rule set's columns) are
    left empty. The evaluation-error counts stay with the set that produced them (the
    active set's on the decided side: it evaluated every row)."""
    decided = _mixed(active, challenger, rows)
    other = _mixed(challenger, active, rows)
    return (
        replace(decided, eval_errors=active.eval_errors),
        replace(other, eval_errors=challenger.eval_errors),
    )


def _mixed(base: Evaluation, over: Evaluation, rows: np.ndarray) -> Evaluation:
    """``over`` on ``rows``, ``base`` elsewhere."""
    n = len(rows)
    mask = pa.array(rows)
    scores = pd.DataFrame(
        {
            "risk_score": np.where(
                rows, over.scores["risk_score"].to_numpy(), base.scores["risk_score"].to_numpy()
            ),
            "band": _text(mask, over.scores["band"], base.scores["band"]),
            "rule_set_version": _text(
                mask, over.scores["rule_set_version"], base.scores["rule_set_version"]
            ),
        },
        index=base.scores.index,
    )
    hits = _long_rows(base.hits, over.hits, rows)
    evidence = base.evidence
    if base.evidence is not None or over.evidence is not None:
        parts = []
        for table, keep in ((base.evidence, ~rows), (over.evidence, rows)):
            if table is not None and table.num_rows:
                at = table.column("row").to_numpy()
                parts.append(table.filter(pa.array(keep[at])))
        if parts:  # (in no particular row order: the store folds it per transaction)
            evidence = pa.concat_tables(parts)
    return Evaluation(
        scores=scores,
        matrix=np.zeros((n, 0), dtype=bool),
        rule_ids=[],
        hits=hits,
        eval_errors={},
        snoozed=0,
        evidence=evidence,
    )


def _text(mask: pa.Array, over: pd.Series, base: pd.Series) -> pd.Series:
    picked = pc.if_else(mask, _large(over), _large(base))
    return pd.Series(pd.arrays.ArrowStringArray(picked, dtype=schema.STR), index=base.index)


def _large(series: pd.Series) -> pa.Array:
    array = pa.array(series, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def _long_rows(base: pd.DataFrame, over: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The long hits (``row``, ``rule_id``, ``points``) of ``over`` on ``rows`` and of
    ``base`` elsewhere, by row (each row's hits in its own set's rule order)."""
    b = base[~rows[base["row"].to_numpy()]]
    o = over[rows[over["row"].to_numpy()]]
    both = pd.concat([b, o], ignore_index=True)
    order = np.argsort(both["row"].to_numpy(), kind="stable")
    return both.iloc[order].reset_index(drop=True)
