"""The per-batch detection step: features, then rules, for one stream of batches.

A :class:`Detector` owns the feature state of one stream and the active rule set. ``swap``
replaces the rule set between batches; feature state carries over when the new rule set
declares the same features. Feature-state maintenance (evicting old window state, growing
its arrays) is left out of the scored batch: call :meth:`Detector.maintain` between batches, from
the thread that scores, once the batch has been handed on (if nobody does, scoring does it
itself every few batches).

A challenger (``set_shadow``) is scored on every batch beside the active rule set, with the
same lists and snoozes: the features both declare alike are computed once (by the active
set's engine); those only the challenger declares (or declares differently) by an engine of
its own, so setting or clearing a challenger never resets the active set's feature state.
That engine takes the batch's arrays (times, amounts, entity hashes) from the active one,
and the challenger's rules whose condition the active set has alike (same text, same rule-
file lists, no feature of the challenger's own) take the active set's hits rather than
being evaluated again: a challenger costs about what it adds.
Its result rides along in :attr:`ScoredBatch.shadow`; a challenger that fails to score a
batch is logged and skipped, never disturbing the active scoring.

With a rollout (``set_shadow(ruleset, rollout=X)``) the challenger decides for the cards in
the X % of buckets below X (:mod:`workbench.scoring.rollout`): :meth:`process` hands on
its verdict for their rows (stored, alerting) and the active set's in the shadow. A batch
the challenger fails on is decided by the active set throughout.
"""

from __future__ import annotations

import logging

import pandas as pd

from workbench.features import FeatureEngine
from workbench.rules import RuleSet
from workbench.scoring import rollout as rollouts
from workbench.scoring.overlay import Overlay
from workbench.scoring.result import Evaluation, ScoredBatch
from workbench.scoring.scorer import Scorer
from workbench.sources.base import SourceBatch

log = logging.getLogger(__name__)


class Detector:
    """Features + scoring for consecutive batches of one stream."""

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        allowed_lateness_s: float = 3600.0,
        overlay: Overlay | None = None,
        feature_threads: int = 1,
    ) -> None:
        self._lateness = allowed_lateness_s
        self._threads = feature_threads  # FeatureEngine(threads=...)
        self.scorer = Scorer(ruleset, overlay)
        self.features = self._engine(ruleset)
        self.shadow: Scorer | None = None  # the challenger, scored beside, never alerting
        self.shadow_features: FeatureEngine | None = None  # what only the challenger needs
        # challenger rule index -> index of the active rule with the same condition
        self._same_rules: dict[int, int] = {}
        self.rollout = 0  # percent of cards (by stable bucket) the challenger decides for

    @property
    def ruleset(self) -> RuleSet:
        return self.scorer.ruleset

    def _engine(self, ruleset: RuleSet) -> FeatureEngine:
        return FeatureEngine(
            ruleset.features, allowed_lateness_s=self._lateness, threads=self._threads
        )

    def swap(self, ruleset: RuleSet) -> None:
        """Score the next batch with ``ruleset``; keep feature state if the features match."""
        if tuple(ruleset.features) != tuple(self.ruleset.features):
            self.features = self._engine(ruleset)
        self.scorer = Scorer(ruleset, self.scorer.overlay)
        if self.shadow is not None:
            self.set_shadow(self.shadow.ruleset, rollout=self.rollout)

    def set_shadow(self, ruleset: RuleSet | None, *, rollout: int = 0) -> None:
        """Score the next batches with challenger ``ruleset`` too (None: stop), deciding for
        ``rollout`` percent of the cards (0: none, it only scores in the shadow). Between
        batches only. The challenger's own feature state is kept while its own features stay
        the same."""
        if not 0 <= rollout <= rollouts.BUCKETS:
            raise ValueError(f"rollout must be 0..100 percent, got {rollout}")
        if ruleset is None:
            self.shadow = self.shadow_features = None
            self._same_rules = {}
            self.rollout = 0
            return
        self.rollout = int(rollout)
        shared = set(self.ruleset.features)  # equal specs (the compiled condition aside)
        own = tuple(s for s in ruleset.features if s not in shared)
        engine = self.shadow_features
        if not own:
            engine = None
        elif engine is None or engine.specs != own:
            engine = FeatureEngine(own, allowed_lateness_s=self._lateness)
        self.shadow_features = engine
        self.shadow = Scorer(ruleset, self.scorer.overlay)
        self._same_rules = {}
        if ruleset.lists == self.ruleset.lists:  # rule-file lists are compiled in
            mine = {s.name for s in own}
            active = {r.when: j for j, r in enumerate(self.scorer.rules)}
            for j, rule in enumerate(self.shadow.rules):
                if rule.when in active and not rule.expr.fields & mine:
                    self._same_rules[j] = active[rule.when]

    @property
    def overlay(self) -> Overlay:
        return self.scorer.overlay

    def swap_overlay(self, overlay: Overlay) -> None:
        """Score the next batch with these lists and snoozes (between batches only)."""
        self.scorer.overlay = overlay
        if self.shadow is not None:
            self.shadow.overlay = overlay

    def score_frame(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """Scored frame (batch + score columns), hits and error counts; advances state."""
        done = self.evaluate(frame)
        return pd.concat([frame, done.scores], axis=1), done.hits, done.eval_errors

    def evaluate(self, frame: pd.DataFrame, *, explain: bool = False) -> Evaluation:
        """Features (point-in-time, advancing this stream's state), then the rules with the
        current lists and snoozes: :meth:`Scorer.evaluation`, as the stream runs it."""
        return self._evaluate(frame, explain=explain)[0]

    def _evaluate(
        self, frame: pd.DataFrame, *, explain: bool = False
    ) -> tuple[Evaluation, Evaluation | None]:
        """The active set's evaluation and the challenger's (None: none, or it failed)."""
        arrays = self.features.batch_arrays(frame)
        feats = self.features.compute_arrays(frame, defer_maintenance=True, arrays=arrays)
        done = self.scorer.evaluation(frame, feats, explain=explain)
        shadow = self.shadow
        if shadow is None:
            return done, None
        try:
            engine = self.shadow_features
            if engine is not None:
                mine = engine.batch_arrays(frame, like=arrays)
                own = engine.compute_arrays(frame, defer_maintenance=True, arrays=mine)
                feats = {**feats, **own}
            hits, ids = done.unsnoozed, done.rule_ids
            known = {
                j: (hits[:, a], done.eval_errors.get(ids[a], 0))
                for j, a in self._same_rules.items()
            }
            # the challenger's evidence too when it decides for some cards
            explain = explain and self.rollout > 0
            return done, shadow.evaluation(frame, feats, explain=explain, known=known)
        except Exception:  # the challenger never disturbs the active scoring
            log.exception("shadow: version %s failed to score a batch", shadow.version)
            return done, None

    def maintain(self) -> bool:
        """Do the feature-state maintenance the last batches left pending (True if any).
        Never concurrently with scoring."""
        done = self.features.maintain()
        if self.shadow_features is not None:
            done |= self.shadow_features.maintain()
        return done

    def process(self, batch: SourceBatch) -> ScoredBatch:
        """Score one source batch (and, with a challenger, its shadow scores; with a
        rollout, the challenger's verdict for its cards and the active set's in the
        shadow)."""
        done, shadow = self._evaluate(batch.frame, explain=True)
        if shadow is not None and self.rollout:
            rows = rollouts.arm(batch.frame["card_id"], self.rollout)
            if rows.any():
                done, shadow = rollouts.split(done, shadow, rows)
        return ScoredBatch(
            shadow=shadow,
            frame=pd.concat([batch.frame, done.scores], axis=1),
            hits=done.hits,
            evidence=done.evidence,
            dead=batch.dead,
            eval_errors=done.eval_errors,
            position=batch.position,
            created_at=batch.created_at,
            rule_set_version=self.ruleset.version,
        )
