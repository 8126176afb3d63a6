"""The safe YAML rule language: load, check and compile rule files.

A rule file declares score ``bands``, an ``alert`` policy, named ``lists``, windowed
``features`` and ``rules``; each rule has a ``when`` condition in a small expression language
(comparisons, and/or/not, arithmetic, ``in``, a few functions) that is parsed by a hand-written
parser, type-checked against the known fields, and compiled to vectorized numpy/pandas code.
Nothing in a rule file can run code.

>>> rules = parse_rules({"rules/demo.yaml": '''
... rules:
...   - id: big_amount
...     when: amount > 1000
...     score: 30
... '''})
>>> [rule.id for rule in rules.enabled_rules], sorted(rules.fields_used)
(['big_amount'], ['amount'])

Pipeline: :mod:`.lexer` -> :mod:`.parser` -> :mod:`.checker` -> :mod:`.compiler` (closures
from :mod:`.values`); files are found and read within :mod:`.limits` by :mod:`.files`,
parsed by :mod:`.document` and assembled by :mod:`.loader`, which also runs each rule's
:mod:`.examples`.
"""

from workbench.errors import RuleError, RuleSetError
from workbench.rules.compiler import CompiledExpr, compile_expression
from workbench.rules.loader import load_rules, parse_rules, version_of
from workbench.rules.model import AlertPolicy, Bands, Rule, RuleSet, known_fields

__all__ = [
    "AlertPolicy",
    "Bands",
    "CompiledExpr",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleSetError",
    "compile_expression",
    "known_fields",
    "load_rules",
    "parse_rules",
    "version_of",
]
