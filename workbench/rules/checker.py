"""Name resolution and type checking of a parsed expression.

Every node gets ``type`` (number, bool, string, timestamp), ``nullable`` (may be unknown for
some row: a missing input or a data error) and ``errs`` (its subtree may hit a data error:
division by zero, log/sqrt out of domain, overflow). The compiler uses these static facts to
leave out masks and checks that cannot matter. All problems found are collected, so one load
reports every unknown name of an expression at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches

from workbench import schema
from workbench.errors import RuleError
from workbench.rules.lexer import error
from workbench.rules.lists import CATALOGUE
from workbench.rules.parser import Node

TYPES = ("number", "bool", "string", "timestamp")
_POISON = "?"  # the type of a node that already failed: no follow-up errors

# name -> (min args, max args or None)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
    "log": (1, 1),
    "sqrt": (1, 1),
    "round": (1, 2),
    "hour": (1, 1),
    "coalesce": (2, 2),
    "is_missing": (1, 1),
}


def closest(word: str, choices) -> str | None:
    """The nearest known name for a did-you-mean hint, if any is close enough."""
    found = get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


class Checker:
    """Annotates a tree in place against the known ``fields`` and ``lists``."""

    def __init__(self, fields: Mapping[str, tuple[str, bool]], lists: Mapping[str, tuple]):
        self.fields = fields
        self.lists = lists
        self.errors: list[RuleError] = []
        self.used: set[str] = set()
        self.maintained: set[str] = set()  # names read through list("...")

    def fail(self, message: str, pos: int, suggestion: str | None = None) -> None:
        self.errors.append(error(message, pos, suggestion))

    def check(self, node: Node) -> str:
        """Set the annotations of ``node`` and its subtree; return its type."""
        method = getattr(self, "_" + node.kind)
        node.type = method(node)
        return node.type

    # -- leaves ----------------------------------------------------------------------------
    def _num(self, node: Node) -> str:
        return "number"

    def _str(self, node: Node) -> str:
        return "string"

    def _bool(self, node: Node) -> str:
        return "bool"

    def _name(self, node: Node) -> str:
        name = node.value
        if name in self.fields:
            kind, nullable = self.fields[name]
            if kind not in TYPES:
                raise ValueError(f"field {name!r} has unknown type {kind!r}")
            node.nullable = bool(nullable)
            self.used.add(name)
            return kind
        if name in self.lists:
            self.fail(f"list '{name}' can only be used after 'in' or 'not in'", node.pos)
        elif name in schema.LABELS:
            self.fail(f"field '{name}' is a label and cannot be used in rules", node.pos)
        elif name in ("True", "False", "TRUE", "FALSE"):
            self.fail(f"unknown field '{name}'", node.pos, name.lower())
        elif name in ("None", "null", "NULL", "nan", "NaN"):
            self.fail(
                f"unknown field '{name}' (test for a missing value with is_missing(x))",
                node.pos,
                "is_missing",
            )
        else:
            known = [*self.fields, *self.lists]
            self.fail(f"unknown field '{name}'", node.pos, closest(name, known))
        return _POISON

    # -- operators -------------------------------------------------------------------------
    def _operands(self, node: Node) -> list[str]:
        types = [self.check(arg) for arg in node.args]
        node.nullable = any(arg.nullable for arg in node.args)
        node.errs = any(arg.errs for arg in node.args)
        return types

    def _need(self, node: Node, types: list[str], want: str, what: str) -> bool:
        for arg, kind in zip(node.args, types, strict=True):
            if kind not in (want, _POISON):
                self.fail(f"{what} needs {_plural(want)}, got {a_type(kind)}", arg.pos)
                return False
        return _POISON not in types

    def _neg(self, node: Node) -> str:
        types = self._operands(node)
        self._need(node, types, "number", "unary '-'")
        return "number"

    def _arith(self, node: Node) -> str:
        types = self._operands(node)
        self._need(node, types, "number", f"'{node.op}'")
        # Any arithmetic can end in a data error: / and % by zero, + - * by overflow.
        node.errs = node.nullable = True
        return "number"

    def _not(self, node: Node) -> str:
        types = self._operands(node)
        self._need(node, types, "bool", "'not'")
        return "bool"

    def _and(self, node: Node) -> str:
        types = self._operands(node)
        self._need(node, types, "bool", f"'{node.kind}'")
        return "bool"

    _or = _and

    def _cmp(self, node: Node) -> str:
        types = self._operands(node)
        for (op, pos), left, right in zip(node.value, types, types[1:], strict=False):
            if _POISON in (left, right):
                continue
            if op in ("==", "!="):
                if left != right:
                    self.fail(
                        f"'{op}' compares values of the same type, got {left} and {right}", pos
                    )
            elif left != "number" or right != "number":
                self.fail(f"'{op}' orders numbers only, got {left} and {right}", pos)
        return "bool"

    def _in(self, node: Node) -> str:
        left_node, right_node = node.args
        left = self.check(left_node)
        node.nullable, node.errs = left_node.nullable, left_node.errs
        if right_node.kind == "dynlist":
            return self._maintained(node, left)
        if right_node.kind == "name":
            name = right_node.value
            if name not in self.lists:
                hint = closest(name, self.lists)
                what = "a field, not a list" if name in self.fields else "not a known list"
                self.fail(f"'{name}' after '{node.op}' is {what}", right_node.pos, hint)
                return "bool"
            items = self.lists[name]
            label = f"list '{name}'"
        else:
            items = [item.value for item in right_node.args]
            for item in right_node.args:
                self.check(item)
            label = "the list"
        kinds = {_value_type(v) for v in items}
        if len(kinds) > 1 or "bool" in kinds or None in kinds:
            self.fail(f"{label} must hold only strings or only numbers", right_node.pos)
        elif left not in ("string", "number", _POISON):
            self.fail(f"'{node.op}' tests strings or numbers, got {a_type(left)}", node.pos)
        elif kinds and left != _POISON and kinds != {left}:
            what = _plural(kinds.pop())
            self.fail(f"cannot test {a_type(left)} against {label} of {what}", node.pos)
        right_node.type = "list"
        return "bool"

    def _maintained(self, node: Node, left: str) -> str:
        """``x in list("name")``: a catalogue list (or an inline one), tested on strings."""
        right = node.args[1]
        name = str(right.value)
        right.type = "list"
        if name not in CATALOGUE and name not in self.lists:
            hint = closest(name, [*CATALOGUE, *self.lists])
            self.fail(f"unknown list '{name[:64]}' in list(...)", right.pos, hint)
        elif name not in CATALOGUE and any(not isinstance(v, str) for v in self.lists[name]):
            self.fail(f"list '{name}' holds numbers; use '{node.op} {name}'", right.pos)
        elif left not in ("string", _POISON):
            self.fail(f"'{node.op} list(...)' tests strings, got {a_type(left)}", node.pos)
        else:
            self.maintained.add(name)
        return "bool"

    def _list(self, node: Node) -> str:  # only reached through _in
        return "list"

    # -- functions -------------------------------------------------------------------------
    def _call(self, node: Node) -> str:
        name = node.value
        if name not in FUNCTIONS:
            hint = closest(name, FUNCTIONS)
            if name in self.fields:
                self.fail(f"'{name}' is a field, not a function", node.pos, hint)
            else:
                self.fail(f"unknown function '{name}'", node.pos, hint)
            for arg in node.args:  # still report unknown names inside
                self.check(arg)
            return _POISON
        low, high = FUNCTIONS[name]
        count = len(node.args)
        if count < low or (high is not None and count > high):
            expect = (
                f"{low}"
                if low == high
                else f"at least {low}"
                if high is None
                else f"{low} to {high}"
            )
            self.fail(
                f"{name}() takes {expect} argument{'s' if expect != '1' else ''}, got {count}",
                node.pos,
            )
            return _POISON
        types = self._operands(node)
        return getattr(self, "_fn_" + name, self._fn_numeric)(node, types)

    def _fn_numeric(self, node: Node, types: list[str]) -> str:
        self._need(node, types, "number", f"{node.value}()")
        if node.value in ("log", "sqrt"):
            node.errs = node.nullable = True
        return "number"

    def _fn_round(self, node: Node, types: list[str]) -> str:
        self._need(node, types, "number", "round()")
        if len(node.args) == 2:
            node.errs = node.nullable = True  # round(1e308, -308) overflows
            digits = node.args[1]
            value = (
                -digits.args[0].value
                if digits.kind == "neg" and digits.args[0].kind == "num"
                else digits.value
            )
            if (
                digits.kind not in ("num", "neg")
                or not isinstance(value, float)
                or value != int(value)
                or abs(value) > 15
            ):
                self.fail(
                    "round() takes a whole number of digits between -15 and 15 as its "
                    "second argument",
                    digits.pos,
                )
        return "number"

    def _fn_hour(self, node: Node, types: list[str]) -> str:
        self._need(node, types, "timestamp", "hour()")
        return "number"

    def _fn_coalesce(self, node: Node, types: list[str]) -> str:
        value, default = node.args
        if _POISON in types:
            return _POISON
        if types[0] != types[1]:
            self.fail(
                f"coalesce() needs two values of the same type, got {types[0]} and {types[1]}",
                default.pos,
            )
            return _POISON
        # An errored value stays unknown (an error is not a missing value).
        node.nullable = default.nullable or value.errs
        return types[0]

    def _fn_is_missing(self, node: Node, types: list[str]) -> str:
        node.nullable = node.args[0].errs
        return "bool"


def _value_type(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _plural(kind: str) -> str:
    return {
        "bool": "bools (conditions)",
        "number": "numbers",
        "string": "strings",
        "timestamp": "timestamps",
    }.get(kind, kind)


def a_type(kind: str) -> str:
    return {
        "bool": "a bool (condition)",
        "number": "a number",
        "string": "a string",
        "timestamp": "a timestamp",
        "list": "a list",
    }.get(kind, kind)
