"""The per-batch detection step: features, then rules, for one stream of batches.

A :class:`Detector` owns the feature state of one stream and the active rule set. ``swap``
replaces the rule set between batches; feature state carries over when the new rule set
declares the same features. Feature-state maintenance (evicting old window state, growing
its arrays) is left out of the scored batch: call :meth:`Detector.maintain` between batches, from
the thread that scores, once the batch has been handed on (if nobody does, scoring does it
itself every few batches).
"""

from __future__ import annotations

import pandas as pd

from workbench.features import FeatureEngine
from workbench.rules import RuleSet
from workbench.scoring.overlay import Overlay
from workbench.scoring.result import Evaluation, ScoredBatch
from workbench.scoring.scorer import Scorer
from workbench.sources.base import SourceBatch


class Detector:
    """Features + scoring for consecutive batches of one stream."""

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        allowed_lateness_s: float = 3600.0,
        overlay: Overlay | None = None,
    ) -> None:
        self._lateness = allowed_lateness_s
        self.scorer = Scorer(ruleset, overlay)
        self.features = FeatureEngine(ruleset.features, allowed_lateness_s=allowed_lateness_s)

    @property
    def ruleset(self) -> RuleSet:
        return self.scorer.ruleset

    def swap(self, ruleset: RuleSet) -> None:
        """Score the next batch with ``ruleset``; keep feature state if the features match."""
        if tuple(ruleset.features) != tuple(self.ruleset.features):
            self.features = FeatureEngine(ruleset.features, allowed_lateness_s=self._lateness)
        self.scorer = Scorer(ruleset, self.scorer.overlay)

    @property
    def overlay(self) -> Overlay:
        return self.scorer.overlay

    def swap_overlay(self, overlay: Overlay) -> None:
        """Score the next batch with these lists and snoozes (between batches only)."""
        self.scorer.overlay = overlay

    def score_frame(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """Scored frame (batch + score columns), hits and error counts; advances state."""
        done = self.evaluate(frame)
        return pd.concat([frame, done.scores], axis=1), done.hits, done.eval_errors

    def evaluate(self, frame: pd.DataFrame, *, explain: bool = False) -> Evaluation:
        """Features (point-in-time, advancing this stream's state), then the rules with the
        current lists and snoozes: :meth:`Scorer.evaluation`, as the stream runs it."""
        feats = self.features.compute_arrays(frame, defer_maintenance=True)
        return self.scorer.evaluation(frame, feats, explain=explain)

    def maintain(self) -> bool:
        """Do the feature-state maintenance the last batches left pending (True if any).
        Never concurrently with scoring."""
        return self.features.maintain()

    def process(self, batch: SourceBatch) -> ScoredBatch:
        """Score one source batch."""
        done = self.evaluate(batch.frame, explain=True)
        return ScoredBatch(
            frame=pd.concat([batch.frame, done.scores], axis=1),
            hits=done.hits,
            evidence=done.evidence,
            dead=batch.dead,
            eval_errors=done.eval_errors,
            position=batch.position,
            created_at=batch.created_at,
        )
