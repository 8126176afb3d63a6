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
from workbench.scoring.result import ScoredBatch
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
        return self._score(frame, explain=False)[:3]

    def _score(self, frame: pd.DataFrame, *, explain: bool = True) -> tuple:
        feats = self.features.compute_arrays(frame, defer_maintenance=True)
        scores, hits, errors, found = self.scorer.score_explained(frame, feats, explain=explain)
        return pd.concat([frame, scores], axis=1), hits, errors, found

    def maintain(self) -> bool:
        """Do the feature-state maintenance the last batches left pending (True if any).
        Never concurrently with scoring."""
        return self.features.maintain()

    def process(self, batch: SourceBatch) -> ScoredBatch:
        """Score one source batch."""
        scored, hits, errors, found = self._score(batch.frame)
        return ScoredBatch(
            frame=scored,
            hits=hits,
            evidence=found,
            dead=batch.dead,
            eval_errors=errors,
            position=batch.position,
            created_at=batch.created_at,
        )
