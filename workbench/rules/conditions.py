"""Row conditions of windowed features (``where:``), compiled by the rule language.

``card_big_1h: {agg: count, by: card_id, window: 1h, where: "amount > 100"}`` counts the
card's rows of the last hour that meet the condition. The condition is an expression of the
same safe language as a rule's ``when`` (parsed, type-checked and compiled the same way, never
evaluated as code), over what a transaction carries itself: its columns and the calendar
built-ins, not other features (a feature of features would need an order between them) and not
maintained lists (``list("...")``: they change while the stream runs, so a backtest could not
reproduce what the stream saw). The rule file's own ``lists`` may be used.

Each row's condition is evaluated once, when its batch arrives, and kept with the row in the
window state (:mod:`workbench.features.passes`); rows whose condition is unknown (a missing
value) do not count.

>>> cond = compile_condition("amount > 100 and channel == 'online'", lists={})
>>> import pandas as pd
>>> cond(pd.DataFrame({"amount": [50.0, 150.0, 150.0],
...                    "channel": ["online", "online", "pos"]})).tolist()
[False, True, False]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from workbench import schema
from workbench.errors import RuleError
from workbench.features.engine import calendar
from workbench.features.spec import BUILTIN
from workbench.rules.compiler import CompiledExpr, compile_expression
from workbench.rules.model import known_fields

_NUMERIC = {c.name for c in schema.COLUMNS if c.kind == "float"}


class RowCondition:
    """A compiled ``where`` condition: call it on a batch for a bool array (true where the
    condition is known to hold)."""

    __slots__ = ("expr",)

    def __init__(self, expr: CompiledExpr) -> None:
        self.expr = expr

    def __call__(self, batch: pd.DataFrame) -> np.ndarray:
        n = len(batch)
        if not n:
            return np.zeros(0, dtype=bool)
        env = {}
        ts = None
        for name in self.expr.fields:
            if name in BUILTIN:
                if ts is None:
                    ts = pd.to_datetime(batch["ts"], utc=True).dt.as_unit("ns").array.asi8
                env[name] = calendar(ts)[name]
            elif name == "ts":
                env[name] = pd.to_datetime(batch["ts"], utc=True).dt.tz_localize(None)
                env[name] = env[name].to_numpy("datetime64[ns]")
            elif name in _NUMERIC:
                env[name] = batch[name].to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                env[name] = batch[name]
        return self.expr(env, n)[0]

    def __repr__(self) -> str:
        return f"RowCondition({self.expr.source!r})"


def compile_condition(text: str, *, lists: Mapping[str, tuple]) -> RowCondition:
    """Parse, check and compile a ``where`` condition over a transaction's own columns.

    Raises RuleError (a RuleSetError for several problems) located by column in ``text``."""
    expr = compile_expression(text, fields=known_fields(()), lists=lists)
    if expr.lists:
        raise RuleError(
            'a where condition cannot read a maintained list (list("...")): it changes while '
            "the stream runs; use a list of the rule file",
            col=text.find("list(") + 1 or None,
        )
    return RowCondition(expr)
