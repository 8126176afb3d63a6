"""Scoring: evaluate a compiled rule set over a batch and its features, vectorized.

The risk score of a transaction is the sum of the points of the enabled rules that hit
(within a rule ``group`` only the largest counts, :mod:`.points`), clipped to 0..100; the
band follows the rule set's thresholds. Every scored row records the rule-set version, and
the hits (which rule, how many points) are kept so any decision can be explained and
reproduced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench import bands, schema
from workbench.rules import RuleSet
from workbench.rules.values import LISTS_KEY, SHARED_KEY, Shared
from workbench.scoring import evidence, points
from workbench.scoring.overlay import Overlay
from workbench.scoring.result import Evaluation

_NUMERIC = {c.name for c in schema.COLUMNS if c.kind == "float"}
_BAND_TEXT = pa.array(bands.LABELS, pa.large_string())


def _text(values: pa.Array, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A ``str`` array of ``values[codes]`` (``values``: large_string): an Arrow take, no
    object per row."""
    return pd.arrays.ArrowStringArray(pc.take(values, pa.array(codes)), dtype=schema.STR)


class Scorer:
    """A rule set made ready to score batches.

    >>> # scorer = Scorer(load_rules("rules")); scores, hits, errors = scorer.score(batch, feats)
    """

    def __init__(self, ruleset: RuleSet, overlay: Overlay | None = None) -> None:
        self.ruleset = ruleset
        self.overlay = overlay or Overlay()  # lists and snoozes: swapped between batches
        self.lists_used = ruleset.lists_used
        self.rules = ruleset.enabled_rules
        self.rule_ids = np.array([r.id for r in self.rules], dtype=object)
        self.points = np.array([r.score for r in self.rules], dtype=np.float64)
        self.groups = tuple(r.group for r in self.rules)
        self.fields = ruleset.fields_used
        self._rule_text = pa.array([r.id for r in self.rules], pa.large_string())
        self._version_column: pd.api.extensions.ExtensionArray | None = None
        seen = Counter(key for r in self.rules for key in getattr(r.expr, "keys", ()))
        self._shared_keys = frozenset(key for key, count in seen.items() if count > 1)

    @property
    def version(self) -> str:
        return self.ruleset.version

    def _versions(self, n: int) -> pd.api.extensions.ExtensionArray:
        """The version, n times (kept for the next batch of the same size: read-only)."""
        if self._version_column is None or len(self._version_column) != n:
            self._version_column = _text(
                pa.array([self.version], pa.large_string()), np.zeros(n, np.int8)
            )
        return self._version_column

    def environment(
        self,
        batch: pd.DataFrame,
        features: pd.DataFrame | Mapping[str, np.ndarray],
        fields: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """The arrays the compiled rules read, by name (only the names some rule uses, or
        ``fields``). ``features``: a frame, or the name -> array mapping of
        :meth:`~workbench.features.FeatureEngine.compute_arrays`."""
        env: dict[str, Any] = {}
        if self.lists_used:
            env[LISTS_KEY] = self.overlay.lists
        for name in self.fields if fields is None else fields:
            if name in features:
                value = features[name]
                env[name] = value if isinstance(value, np.ndarray) else value.to_numpy()
            elif name == "ts":
                env[name] = batch["ts"].dt.tz_localize(None).to_numpy("datetime64[ns]")
            elif name in _NUMERIC:
                env[name] = batch[name].to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                env[name] = batch[name]
        return env

    def evaluate(
        self, env: Mapping[str, Any], n: int, known: Mapping[int, tuple] | None = None
    ) -> tuple[np.ndarray, dict[str, int]]:
        """Hit matrix (rows x enabled rules, bool) and evaluation-error counts per rule.
        ``known``: rule index -> (hits, rows that failed) already evaluated on the same rows
        (a rule another rule set has alike, :meth:`evaluation`'s ``known``)."""
        hits = np.zeros((n, len(self.rules)), dtype=bool, order="F")
        errors: dict[str, int] = {}
        if self._shared_keys and isinstance(env, dict):
            # What several rules compute alike is computed once for this batch.
            env = {**env, SHARED_KEY: Shared(self._shared_keys)}
        for j, rule in enumerate(self.rules):
            if known is not None and j in known:
                hits[:, j], failed = known[j]
                if failed:
                    errors[rule.id] = failed
                continue
            hit, err = rule.expr(env, n)
            hits[:, j] = hit
            failed = int(np.count_nonzero(err))
            if failed:
                errors[rule.id] = failed
        return hits, errors

    def score(
        self, batch: pd.DataFrame, features: pd.DataFrame | Mapping[str, np.ndarray]
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
        """Scores, long-format hits and error counts for one batch (``features`` as for
        :meth:`environment`): the parts of :meth:`evaluation` that storage writes."""
        done = self.evaluation(batch, features)
        return done.scores, done.hits, done.eval_errors

    def score_explained(
        self,
        batch: pd.DataFrame,
        features: pd.DataFrame | Mapping[str, np.ndarray],
        *,
        explain: bool = True,
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], pa.Table]:
        """:meth:`score`, plus the evidence (:func:`~workbench.scoring.evidence.collect`)
        of the rows whose band reaches the rule set's alert band."""
        done = self.evaluation(batch, features, explain=explain)
        return done.scores, done.hits, done.eval_errors, done.evidence

    def evaluation(
        self,
        batch: pd.DataFrame,
        features: pd.DataFrame | Mapping[str, np.ndarray],
        *,
        explain: bool = False,
        known: Mapping[int, tuple] | None = None,
    ) -> Evaluation:
        """The rule set, its lists and its snoozes applied to one batch: the one
        implementation of scoring (the stream's detect node, the backtest, the what-if and
        the reload dry run all come here). ``features`` as for :meth:`environment`;
        ``explain`` also collects the evidence of the rows reaching the alert band;
        ``known``: rule index -> (hits before snoozes, rows that failed) of rules already
        evaluated on this batch (see :meth:`evaluate`)."""
        n = len(batch)
        fields = None
        if known and not explain:  # evidence reads every rule's inputs
            rest = [r.expr.fields for j, r in enumerate(self.rules) if j not in known]
            fields = frozenset().union(*rest)
        env = self.environment(batch, features, fields)
        hits, errors = self.evaluate(env, n, known)
        # the hits before snoozes, for a rule set that shares rules (a copy only when a
        # snooze may clear some)
        unsnoozed = hits.copy(order="F") if self.overlay.groups else hits
        snoozed = self.overlay.snooze_mask(batch, self.rule_ids, hits)
        # Per rule, the rows it hit (a column of the Fortran-ordered matrix is contiguous):
        # the points add up over those rows only, and the long format is the rules' row
        # lists merged by row (stable: a transaction's hits in rule order).
        hit_rows = [np.flatnonzero(hits[:, j]) for j in range(len(self.rules))]
        raw = points.combine(hit_rows, self.points, self.groups, n)
        rows = np.concatenate(hit_rows) if hit_rows else np.zeros(0, dtype=np.int64)
        cols = np.repeat(np.arange(len(hit_rows)), [len(at) for at in hit_rows])
        by_row = np.argsort(rows, kind="stable")
        rows, cols = rows[by_row], cols[by_row]
        risk = np.clip(raw, 0.0, 100.0)
        cuts = self.ruleset.bands
        codes = (risk >= cuts.medium).astype(np.int8) + (risk >= cuts.high).astype(np.int8)
        scores = pd.DataFrame(
            {
                "risk_score": risk,
                "band": _text(_BAND_TEXT, codes),
                "rule_set_version": self._versions(n),
            },
            index=batch.index,
            copy=False,  # fresh arrays, and the cached version column is never written
        )
        long = pd.DataFrame(
            {
                "row": rows.astype(np.int64),
                "rule_id": _text(self._rule_text, cols),
                "points": self.points[cols],
            },
            copy=False,
        )
        found = evidence.empty()
        rank = bands.alert_rank(self.ruleset.alert.min_band)
        if explain and rank:
            alertable = np.flatnonzero(codes + 1 >= rank)
            if len(alertable):
                found = evidence.collect(self.rules, hits, env, alertable)
        return Evaluation(
            scores=scores,
            matrix=hits,
            rule_ids=self.rule_ids.tolist(),
            hits=long,
            eval_errors=errors,
            snoozed=snoozed,
            evidence=found,
            unsnoozed=unsnoozed,
        )
