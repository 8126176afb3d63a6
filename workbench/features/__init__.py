"""Point-in-time features: declarations (:mod:`.spec`) and the engine that computes them.

A feature is a named per-transaction value computed from the transactions of the same entity
strictly before it (and from labels only once known), the same way online (batch by batch,
:class:`FeatureEngine`) and offline (:func:`compute_features`) — identical values by design.

Modules: ``spec`` (what may be declared), ``engine`` (public API, semantics), ``group`` (the
features of one ``by`` column from its window state), ``passes`` (the compiled per-batch pass
and the eviction from that state), ``outputs`` (the compiled pass from raw aggregates to
feature values: means, std, rates, distances), ``quantiles`` (exact window percentiles),
``window_state`` (its arrays and their growth), ``labels`` (stored-label features), ``since``
(time since the latest known fraud), ``kernels`` and ``compiled`` (hashing).
"""

from workbench.features.engine import FeatureEngine, calendar, compute_features
from workbench.features.group import PREVIOUS_LOOKBACK_S

__all__ = ["PREVIOUS_LOOKBACK_S", "FeatureEngine", "calendar", "compute_features"]
