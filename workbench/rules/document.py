"""Safe reading of one YAML rule file into located nodes.

PyYAML's loaders build Python objects and can be told to construct arbitrary ones; we never
let them. The file is read as a stream of parser *events* (libyaml's C parser when present),
and this module builds plain nodes from them, keeping each node's position so every later
error can name ``file:line:col``. Anchors, aliases (the "billion laughs" bomb), explicit tags
(``!!python/object/apply:os.system``), several documents, deep nesting, duplicate keys and
files over :data:`~workbench.rules.limits.MAX_FILE_BYTES` are refused, and the parse stops at
the first rule past the rule set's budget.  Plain scalars are resolved the YAML 1.2 way: only
``true``/``false`` are bools, so ``NO`` (Norway) stays a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from workbench.errors import RuleError
from workbench.rules.limits import MAX_DEPTH, MAX_FILE_BYTES, TOO_MANY_RULES, size

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_SPECIAL = {
    ".inf": float("inf"),
    "+.inf": float("inf"),
    "-.inf": float("-inf"),
    ".nan": float("nan"),
}


@dataclass(slots=True, eq=False)
class YNode:
    """A YAML node: ``kind`` map (``value``: key -> (key node, value node)), seq (list) or
    scalar (resolved Python value, with the raw ``text`` and quoting ``style``)."""

    kind: str
    line: int
    col: int
    index: int
    end: int = 0
    value: Any = None
    text: str = ""
    style: str = ""


def read_document(text: str, *, max_rules: int | None = None) -> YNode | None:
    """The root node of ``text`` (None for an empty file), or a located RuleError.

    With ``max_rules``, the parse stops at the first item of the top-level ``rules`` list
    past that many (message :data:`~workbench.rules.limits.TOO_MANY_RULES`), so an oversized
    rule set costs no more than the rules it is allowed.
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise RuleError(f"file is larger than {size(MAX_FILE_BYTES)}", line=1, col=1)
    try:
        return _build(yaml.parse(text, Loader=_Loader), max_rules)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise RuleError(
            f"YAML syntax error: {problem}",
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        line, col = line_col(text, exc.position)
        raise RuleError(f"YAML cannot read this file: {exc.reason}", line=line, col=col) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"YAML error: {exc}") from None


def _fail(message: str, event: Any) -> RuleError:
    mark = event.start_mark
    return RuleError(message, line=mark.line + 1, col=mark.column + 1)


def _build(events, max_rules: int | None = None) -> YNode | None:
    root: YNode | None = None
    stack: list[list] = []  # [container node, pending key node or None]
    documents = 0
    rules: YNode | None = None  # the top-level `rules` list, whose items are counted
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            raise _fail("YAML aliases (*name) are not allowed in rule files", event)
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _fail("a rule file holds one YAML document (remove '---')", event)
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()[0].end = event.end_mark.index
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue  # stream and document boundaries
        if event.anchor is not None:
            raise _fail("YAML anchors (&name) are not allowed in rule files", event)
        if event.tag is not None:
            raise _fail(
                f"YAML tags such as '{event.tag[:80]}' are not allowed in rule files", event
            )
        mark = event.start_mark
        if isinstance(event, yaml.ScalarEvent):
            node = YNode(
                "scalar",
                mark.line + 1,
                mark.column + 1,
                mark.index,
                end=event.end_mark.index,
                text=event.value,
                style=event.style or "",
            )
            node.value = _resolve(event.value) if not node.style else event.value
        else:
            kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
            node = YNode(
                kind, mark.line + 1, mark.column + 1, mark.index, value={} if kind == "map" else []
            )
        if stack:
            parent, key = stack[-1]
            if parent is rules and max_rules is not None and len(parent.value) >= max_rules:
                raise _fail(TOO_MANY_RULES, event)
            _attach(stack[-1], node, event)
            if node.kind == "seq" and len(stack) == 1 and key is not None and key.text == "rules":
                rules = node
        else:
            root = node
        if node.kind != "scalar":
            if len(stack) >= MAX_DEPTH:
                raise _fail(f"YAML is nested too deeply (at most {MAX_DEPTH} levels)", event)
            stack.append([node, None])
    return root


def _attach(top: list, node: YNode, event: Any) -> None:
    parent, key = top
    if parent.kind == "seq":
        parent.value.append(node)
    elif key is None:
        if node.kind != "scalar":
            raise _fail("mapping keys must be plain names", event)
        if node.text in parent.value:
            first = parent.value[node.text][0]
            raise _fail(f"duplicate key '{node.text}' (first on line {first.line})", event)
        top[1] = node
    else:
        parent.value[key.text] = (key, node)
        top[1] = None


def _resolve(text: str) -> Any:
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text) if len(text) <= 30 else float(text)
    if _FLOAT.match(text):
        return float(text)
    return _SPECIAL.get(text.lower(), text)


def to_python(node: YNode | None) -> Any:
    """Plain Python data of a node (dicts, lists, scalars)."""
    if node is None:
        return None
    if node.kind == "map":
        return {k: to_python(v) for k, (_, v) in node.value.items()}
    if node.kind == "seq":
        return [to_python(v) for v in node.value]
    return node.value


def line_col(source: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    index = max(0, min(index, len(source)))
    line_start = source.rfind("\n", 0, index) + 1
    return source.count("\n", 0, index) + 1, index - line_start + 1


def locate(source: str, node: YNode, offset: int) -> tuple[int, int]:
    """Line and column in ``source`` of character ``offset`` of a scalar's value.

    The value is matched back onto the source text greedily: folding, indentation, quotes
    and block headers are skipped; an offset it cannot follow (an escape sequence) falls
    back to the nearest position found.
    """
    start, end = node.index, min(node.end, len(source))
    if node.style in ("|", ">"):  # the value starts on the line after the header
        newline = source.find("\n", start, end)
        start = newline + 1 if newline != -1 else end
    elif node.style in ("'", '"'):
        start += 1
    j = start
    for i, ch in enumerate(node.text):
        space = ch.isspace()
        k = j
        while k < end and (not source[k].isspace() if space else source[k] != ch):
            k += 1
        if k >= end:  # lost the thread: stay where we are
            break
        if i >= offset:
            return line_col(source, k)
        j = k + 1
    return line_col(source, j if offset >= len(node.text) else max(start, j))
