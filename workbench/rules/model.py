"""The loaded rule set: immutable values the scoring stage reads, and the table of names a
``when`` expression may use."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench import schema
from workbench.bands import Band
from workbench.features.spec import BUILTIN, FeatureSpec
from workbench.rules.compiler import CompiledExpr

_SCHEMA_TYPES = {"str": "string", "float": "number", "timestamp": "timestamp", "bool": "bool"}


@dataclass(frozen=True)
class Bands:
    """Score thresholds: below ``medium`` is Low, below ``high`` Medium, else High."""

    medium: float = 40.0
    high: float = 70.0


@dataclass(frozen=True)
class AlertPolicy:
    """Raise an alert from ``min_band`` up; at most one open alert per card per ``dedup_s``."""

    min_band: Band = Band.HIGH
    dedup_s: float = 600.0


@dataclass(frozen=True)
class Rule:
    """One checked and compiled rule; ``file``/``line`` say where it was written. Rules of
    one ``group`` give the largest of their hits' points, not the sum (see
    :func:`workbench.scoring.points.combine`)."""

    id: str
    description: str
    when: str
    score: float
    enabled: bool
    tags: tuple[str, ...]
    file: str
    line: int
    expr: CompiledExpr = field(repr=False, compare=False)
    examples: dict = field(default_factory=dict, repr=False, compare=False)
    group: str | None = None


@dataclass(frozen=True)
class RuleSet:
    """Every rule of a load, with the bands, alert policy, lists and features they use.

    ``version`` is a content hash of ``texts`` (file name -> YAML text), so equal files give
    equal versions and any edit gives a new one.
    """

    version: str
    bands: Bands
    alert: AlertPolicy
    lists: dict[str, tuple]
    features: tuple[FeatureSpec, ...]
    rules: tuple[Rule, ...]
    texts: dict[str, str] = field(repr=False)

    @property
    def enabled_rules(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    @property
    def fields_used(self) -> frozenset[str]:
        """Every field or feature name an enabled rule reads."""
        return frozenset().union(*(rule.expr.fields for rule in self.enabled_rules))

    @property
    def lists_used(self) -> frozenset[str]:
        """Every maintained list (``list("...")``) an enabled rule reads."""
        return frozenset().union(*(rule.expr.lists for rule in self.enabled_rules))

    @property
    def field_types(self) -> dict[str, tuple[str, bool]]:
        """name -> (type, nullable) of every name a rule of this set may read."""
        return known_fields(self.features)


def known_fields(features: tuple[FeatureSpec, ...] = ()) -> dict[str, tuple[str, bool]]:
    """The names a ``when`` expression may read: schema columns (not labels), the calendar
    built-ins and the declared features, each as (type, nullable)."""
    fields: dict[str, tuple[str, bool]] = {}
    for col in schema.COLUMNS:
        if col.label:
            continue
        fields[col.name] = (_SCHEMA_TYPES[col.kind], not col.required)
    for name, (kind, nullable, _help) in BUILTIN.items():
        fields[name] = (kind, nullable)
    for spec in features:
        fields[spec.name] = (spec.type, spec.nullable)
    return fields
