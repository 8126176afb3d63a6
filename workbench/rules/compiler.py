"""Compile a checked expression into a tree of small closures over numpy / pandas.

Each closure runs once per batch (never per row). A condition is compiled for what its parent
needs from it under three-valued logic: ``T`` (rows known true), ``F`` (rows known false) or
both. ``not`` swaps the two, ``and``/``or`` combine them, and an ordering comparison gets F from
the opposite operator (NaN compares false both ways), so a rule such as
``amount > 5 * avg and avg > 0`` compiles to the same numpy calls one would write by hand.

Data errors (division by zero, log/sqrt out of domain, overflow) turn the value unknown and are
recorded in the evaluation context. Only when a batch had one is the expression evaluated
again for both T and F, so that ``error`` is set just where the result stayed unknown: a
guarded ``avg > 0 and amount / avg > 5`` reports no error for ``avg == 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from workbench.errors import RuleSetError
from workbench.rules import values as V
from workbench.rules.checker import Checker, a_type
from workbench.rules.lexer import error
from workbench.rules.parser import Node, parse

Fn = Callable[["V.Ctx"], Any]

_FLIP = {"T": "F", "F": "T", "TF": "TF"}
_LITERALS = ("num", "str", "bool")


class CompiledExpr:
    """A compiled ``when`` expression; call it on a batch environment.

    ``source`` is the text it was compiled from, ``fields`` every field or feature it reads,
    ``lists`` the maintained lists it reads through ``list("...")`` (the environment's
    :data:`~workbench.rules.values.LISTS_KEY` entry, name -> values).
    """

    __slots__ = ("_alias", "_fast", "_full", "fields", "keys", "lists", "source")

    def __init__(
        self,
        source: str,
        fields: frozenset[str],
        fast: Fn,
        full: Fn | None,
        alias: bool = True,
        lists: frozenset[str] = frozenset(),
        keys: frozenset[str] = frozenset(),
    ):
        self.source = source
        self.keys = keys  # its subexpressions that other rules may share (_Builder.keys)
        self.fields = fields
        self.lists = lists
        self._fast = fast
        self._full = full
        self._alias = alias

    def __call__(self, env: Mapping[str, Any], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(hit, error): two bool arrays of length n.

        ``hit`` is true where the expression is known true; ``error`` where a data error left
        the result unknown. Never raises or warns on bad data.
        """
        ctx = V.Ctx(env, n)
        with np.errstate(all="ignore"):
            hit = self._fast(ctx)
            if ctx.errors and self._full is not None:  # rare: some row had a data error
                ctx = V.Ctx(env, n)
                hit, known_false = self._full(ctx)
                err = V.any_of(ctx.errors, n) & ~np.broadcast_to(hit | known_false, (n,))
            else:
                err = np.zeros(n, dtype=bool)
        if np.ndim(hit) == 0:
            return np.full(n, bool(hit)), err
        if self._alias:  # never hand out the caller's own column
            return np.array(hit, dtype=bool), err
        return hit, err

    def __repr__(self) -> str:
        return f"CompiledExpr({self.source!r})"


def compile_expression(
    text: str, *, fields: Mapping[str, tuple[str, bool]], lists: Mapping[str, tuple]
) -> CompiledExpr:
    """Parse, type-check, fold and compile one condition.

    ``fields`` maps each readable name to ``(type, nullable)``; ``lists`` maps list names to
    their items. Raises RuleError (a RuleSetError when several problems are found) located by
    column inside ``text``.

    >>> expr = compile_expression("amount > 100", fields={"amount": ("number", False)},
    ...                           lists={})
    >>> expr({"amount": np.array([50.0, 150.0])}, 2)[0].tolist()
    [False, True]
    """
    tree = parse(text)
    checker = Checker(fields, lists)
    kind = checker.check(tree)
    errors = checker.errors
    if not errors and kind != "bool":
        errors.append(error(f"a condition must be true or false, got {a_type(kind)}", tree.pos))
    if errors:
        raise errors[0] if len(errors) == 1 else RuleSetError(errors)
    tree = _fold(tree, lists, text)
    builder = _Builder(lists)
    fast = builder.cond(tree, "T")
    full = _Builder(lists).cond(tree, "TF") if tree.errs else None
    return CompiledExpr(
        text,
        frozenset(checker.used),
        fast,
        full,
        _may_alias(tree),
        frozenset(checker.maintained),
        frozenset(builder.keys),
    )


def _may_alias(node: Node) -> bool:
    """Whether the T result may be an input array itself (a bare bool field, negated twice,
    or through coalesce) rather than a fresh one."""
    if node.kind in ("name", "not"):
        return node.kind == "name" or _may_alias(node.args[0])
    return (
        node.kind == "call"
        and node.value == "coalesce"
        and (not node.args[0].nullable or _may_alias(node.args[0]) or _may_alias(node.args[1]))
    )


# -- constant folding ---------------------------------------------------------------------
def _fold(node: Node, lists: Mapping[str, tuple], text: str) -> Node:
    """Replace literal-only subtrees by their value; drop constant and/or operands."""
    if node.kind in (*_LITERALS, "name", "list", "dynlist"):
        return node
    node.args = [_fold(arg, lists, text) for arg in node.args]
    if node.kind in ("and", "or"):
        return _simplify_logic(node)
    operands = node.args[:1] if node.kind == "in" else node.args
    if node.kind == "in" and node.args[1].kind == "dynlist":
        return node  # a maintained list is only known at run time
    if not all(arg.kind in _LITERALS for arg in operands):
        return node
    ctx = V.Ctx({}, 1)
    with np.errstate(all="ignore"):
        if node.type == "bool":
            true, false = _Builder(lists).cond(node, "TF")(ctx)
            value: object = bool(true) if bool(true) or bool(false) else None
        else:
            value = _Builder(lists).value(node)(ctx)
            value = float(value) if node.type == "number" else value
    finite = not (isinstance(value, float) and not np.isfinite(value))
    if ctx.errors or value is None or not finite:
        raise error(
            f"constant expression '{text[node.start : node.end]}' has no finite value "
            "(division by zero, overflow, or log/sqrt out of range)",
            node.pos,
        )
    kind = {"number": "num", "string": "str", "bool": "bool"}[node.type]
    return Node(kind, node.pos, node.start, node.end, value=value, type=node.type)


def _simplify_logic(node: Node) -> Node:
    # Kleene: (x and false) is false even when x is unknown; (x and true) is x.
    absorbing = node.kind == "or"
    kept = []
    for arg in node.args:
        if arg.kind == "bool":
            if arg.value == absorbing:
                return Node("bool", node.pos, node.start, node.end, value=absorbing, type="bool")
            continue
        kept.append(arg)
    if not kept:
        return Node("bool", node.pos, node.start, node.end, value=not absorbing, type="bool")
    if len(kept) == 1:
        return kept[0]
    node.args = kept
    return node


# -- closures -----------------------------------------------------------------------------
# Subexpressions worth sharing between rules: a comparison, membership test, arithmetic or
# function call. Not literals and names (a lookup), nor and/or/not (one cheap combine of
# operands that are shared themselves, and mostly what makes each rule its own).
_SHAREABLE = ("cmp", "in", "arith", "neg", "call")


def _key(node: Node) -> str:
    """The node's meaning as text, the same wherever and however it is spelled."""
    value = node.value
    if node.kind == "cmp":
        value = [op for op, _pos in node.value]
    parts = ",".join(_key(a) for a in node.args)
    return f"{node.kind}:{node.op}:{value!r}:{node.type}:{node.nullable}({parts})"


def _error_free(node: Node) -> bool:
    """No data error anywhere below: its result can be reused without its error masks (a
    coalesce may hide an error in its value, yet the rule's error report reads it)."""
    return not node.errs and all(_error_free(a) for a in node.args)


class _Builder:
    def __init__(self, lists: Mapping[str, tuple]) -> None:
        self.lists = lists
        self.keys: set[str] = set()

    def _shared(self, node: Node, want: str, fn: Fn) -> Fn:
        if node.kind not in _SHAREABLE or not _error_free(node):
            return fn
        key = f"{want}|{_key(node)}"
        self.keys.add(key)
        return V.shared(key, fn)

    def value(self, node: Node) -> Fn:
        """A closure for a non-bool node: ndarray / Series, or a scalar for literals."""
        return self._shared(node, "", self._value(node))

    def _value(self, node: Node) -> Fn:
        if node.kind == "num":
            const = np.float64(node.value)
            return lambda ctx: const
        if node.kind == "str":
            text = node.value
            return lambda ctx: text
        if node.kind == "name":
            return V.LEAVES[node.type](node.value)
        if node.kind == "neg":
            inner = self.value(node.args[0])
            return lambda ctx: -inner(ctx)
        if node.kind == "arith":
            return V.checked(
                V.ARITH[node.op],
                V.GUARDS[node.op],
                [self.value(a) for a in node.args],
                [a.nullable for a in node.args],
            )
        if node.kind == "call":
            return self.call(node)
        raise AssertionError(f"not a value node: {node.kind}")

    def call(self, node: Node) -> Fn:
        name, args = node.value, node.args
        if name == "coalesce":
            return self.coalesce(node)
        fns = [self.value(a) for a in args]
        if name in ("log", "sqrt"):
            return V.checked(V.UNARY[name], V.GUARDS[name], fns, [args[0].nullable])
        if name == "round":
            if len(args) == 1:
                inner = fns[0]
                return lambda ctx: np.round(inner(ctx))
            digits = int(fns[1](V.Ctx({}, 1)))
            return V.checked(
                lambda x: np.round(x, digits), V.GUARDS["round"], fns[:1], [args[0].nullable]
            )
        if name == "abs":
            inner = fns[0]
            return lambda ctx: np.abs(inner(ctx))
        if name in ("min", "max"):
            ufunc = np.minimum if name == "min" else np.maximum
            first, rest = fns[0], fns[1:]

            def extreme(ctx):
                out = first(ctx)
                for fn in rest:
                    out = ufunc(out, fn(ctx))
                return out

            return extreme
        if name == "hour":
            return V.hour_of(fns[0])
        raise AssertionError(f"no closure for function {name}")

    def coalesce(self, node: Node) -> Fn:
        value, default = node.args
        if not value.nullable:
            return self.value(value) if value.type != "bool" else self.cond(value, "TF")
        if value.type == "bool":
            return V.coalesce_bool(self.cond(value, "TF"), self.cond(default, "TF"), value.errs)
        return V.coalesce_value(value.type, self.value(value), self.value(default), value.errs)

    def cond(self, node: Node, want: str) -> Fn:
        """A closure for a bool node returning T, F or (T, F) as asked by ``want``."""
        return self._shared(node, want, self._cond(node, want))

    def _cond(self, node: Node, want: str) -> Fn:
        kind = node.kind
        if kind == "bool":
            pair = (np.bool_(node.value), np.bool_(not node.value))
            return V.pick(lambda ctx: pair, want)
        if kind == "name":
            return V.bool_leaf(node.value, node.nullable, want)
        if kind == "not":
            inner = self.cond(node.args[0], _FLIP[want])
            if want != "TF":
                return inner
            return lambda ctx: inner(ctx)[::-1]
        if kind in ("and", "or"):
            return V.logic(kind, [self.cond(a, want) for a in node.args], want)
        if kind == "cmp":
            return self.compare(node, want)
        if kind == "in":
            return self.member(node, want)
        if kind == "call" and node.value == "is_missing":
            arg = node.args[0]
            inner = self.cond(arg, "TF") if arg.type == "bool" else self.value(arg)
            return V.is_missing(arg.type, inner, arg.errs, want)
        if kind == "call" and node.value == "coalesce":
            return V.pick(self.coalesce(node), want)
        raise AssertionError(f"not a condition node: {kind}")

    def operand(self, node: Node) -> Fn:
        return self.cond(node, "TF") if node.type == "bool" else self.value(node)

    def compare(self, node: Node, want: str) -> Fn:
        fns = [self.operand(a) for a in node.args]
        nulls = [a.nullable for a in node.args]
        kind = node.args[0].type
        pairs = [
            V.comparer(kind, op, nulls[i], nulls[i + 1], want)
            for i, (op, _pos) in enumerate(node.value)
        ]
        if len(pairs) == 1:
            left, right, pair = fns[0], fns[1], pairs[0]
            return lambda ctx: pair(left(ctx), right(ctx))
        combine = V.combiner("and", want)

        def chain(ctx):
            values = [fn(ctx) for fn in fns]  # the middle operands are evaluated once
            out = None
            for i, pair in enumerate(pairs):
                part = pair(values[i], values[i + 1])
                out = part if out is None else combine(out, part)
            return out

        return chain

    def member(self, node: Node, want: str) -> Fn:
        left, right = node.args
        if right.kind == "dynlist":
            name = str(right.value)
            static = tuple(self.lists.get(name, ()))
            inner_want = _FLIP[want] if node.op == "not in" else want
            found = V.maintained(name, static, self.value(left), left.nullable, inner_want)
            if node.op == "not in" and want == "TF":
                return lambda ctx: found(ctx)[::-1]
            return found
        items = (
            self.lists[right.value] if right.kind == "name" else [item.value for item in right.args]
        )
        if node.op == "not in":
            want = _FLIP[want]
        inner = V.membership(left.type, self.value(left), tuple(items), left.nullable, want)
        if node.op == "not in" and want == "TF":
            return lambda ctx: inner(ctx)[::-1]
        return inner
