"""Point-in-time features: declarations (:mod:`.spec`) and the engine that computes them.

A feature is a named per-transaction value computed from the transactions of the same entity
strictly before it (and from labels only once known), the same way online (batch by batch,
:class:`FeatureEngine`) and offline (:func:`compute_features`) — identical values by design.

Modules: ``spec`` (what may be declared), ``engine`` (public API, semantics), ``group`` (state
of one ``by`` column, merging and eviction), ``level`` (sorted searchable state),
``queries``/``aggregates`` (the vectorized window computations), ``kernels`` (building blocks),
``compiled`` (numba loops for merges, searches and hashing).
"""

from workbench.features.engine import FeatureEngine, calendar, compute_features
from workbench.features.group import PREVIOUS_LOOKBACK_S

__all__ = ["PREVIOUS_LOOKBACK_S", "FeatureEngine", "calendar", "compute_features"]
