"""Load a rule set: find the files, read them safely, check everything, compile, run examples.

Checks run in order (shape -> names -> types -> compile -> examples) and every problem of a
load is collected, so an analyst sees all of them at once. One problem raises RuleError, more
raise RuleSetError; a failed load never yields a partial rule set.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from workbench import schema
from workbench.bands import Band
from workbench.durations import parse_duration
from workbench.errors import RuleError, RuleSetError
from workbench.features.spec import BUILTIN, FeatureSpec, FeatureSpecError, parse_feature
from workbench.rules.checker import closest
from workbench.rules.compiler import compile_expression
from workbench.rules.conditions import compile_condition
from workbench.rules.document import YNode, locate, read_document, to_python
from workbench.rules.examples import check_examples
from workbench.rules.files import read_rule_files
from workbench.rules.limits import (
    MAX_ERRORS,
    MAX_FILES,
    MAX_MESSAGE,
    MAX_RULES,
    MAX_TOTAL_BYTES,
    TOO_MANY_RULES,
    clip,
    size,
)
from workbench.rules.model import AlertPolicy, Bands, Rule, RuleSet, known_fields

NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
RULE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
"""Rule ids and group names: any case, unique case-insensitively."""
TOP_KEYS = ("bands", "alert", "lists", "features", "rules")
RULE_KEYS = ("id", "description", "when", "score", "enabled", "tags", "group", "examples")


def load_rules(paths: str | Path | Sequence[str | Path]) -> RuleSet:
    """Load the rule files in a directory (``*.yaml``/``*.yml`` directly inside, sorted;
    hidden and editor temp files skipped) or an explicit list of files.

    The files are read by :func:`~workbench.rules.files.read_rule_files` (limits, links,
    strict UTF-8). Raises RuleError for one problem, RuleSetError (listing all) for several.
    """
    texts, errors = read_rule_files(paths)
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    where = str(items[0]) if len(items) == 1 and Path(items[0]).is_dir() else None
    return _Load(texts, errors, where=where).build()


def parse_rules(texts: Mapping[str, str]) -> RuleSet:
    """The rule set of ``{display file name: YAML text}``, with the same checks as
    :func:`load_rules` (for the editor and what-if runs)."""
    total = sum(
        len(t.encode("utf-8", "surrogatepass")) for t in texts.values() if isinstance(t, str)
    )
    if len(texts) > MAX_FILES or total > MAX_TOTAL_BYTES:
        raise RuleError(
            f"a rule set holds at most {MAX_FILES} files and {size(MAX_TOTAL_BYTES)}; got "
            f"{len(texts)} files, {total:,} bytes",
            file=min(texts, default=None),
        )
    return _Load(dict(texts), []).build()


def version_of(texts: Mapping[str, str]) -> str:
    """Content hash of a rule set: sha256 over the sorted (file name, text) pairs."""
    payload = json.dumps(sorted(texts.items()), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class _Load:
    """One load: collects every error, then builds the RuleSet or raises."""

    def __init__(
        self, texts: dict[str, str], errors: list[RuleError], *, where: str | None = None
    ) -> None:
        self.texts = texts
        self.errors = errors
        self.where_loaded = where  # the directory, when one was loaded
        self.file = ""
        self.rule_id: str | None = None
        self.seen: dict[tuple[str, str], tuple[str, YNode]] = {}
        self.groups: dict[str, str] = {}  # rule group, case-folded -> its first spelling

    # -- error helpers ---------------------------------------------------------------------
    def fail(self, message: str, node: YNode | None, suggestion: str | None = None) -> None:
        self.errors.append(
            RuleError(
                message,
                file=self.file,
                line=node.line if node else None,
                col=node.col if node else None,
                rule_id=self.rule_id,
                suggestion=suggestion,
            )
        )

    def where(self, file: str, node: YNode) -> str:
        return f"{file}:{node.line}:{node.col}"

    def unique(self, what: str, name: str, node: YNode, *, any_case: bool = False) -> bool:
        """False (and an error naming both places) when ``name`` was declared before (with
        ``any_case``: in any case, e.g. ``Velocity`` after ``velocity``)."""
        key = name.casefold() if any_case else name
        first = self.seen.get((what, key))
        if first is not None:
            other = first[1].text
            same = f"'{other}', " if other != name else ""
            case = " (ids are compared ignoring case)" if any_case and other != name else ""
            self.fail(f"duplicate {what} '{name}'{case} (also {same}at {self.where(*first)})", node)
            return False
        self.seen[(what, key)] = (self.file, node)
        return True

    def keys(self, node: YNode, allowed: Sequence[str], where: str) -> None:
        for key, (key_node, _) in node.value.items():
            if key not in allowed:
                message = f"unknown key '{_shown(key)}'" + ("" if self.rule_id else f" in {where}")
                self.fail(message, key_node, closest(key, allowed))

    # -- the load --------------------------------------------------------------------------
    def build(self) -> RuleSet:
        order = sorted(self.texts)
        sections: dict[str, list[tuple[str, YNode]]] = {key: [] for key in TOP_KEYS}
        budget = MAX_RULES  # rules the files not read yet may still hold
        for name in order:
            self.file = name
            found = self.read(name, budget)
            if self.errors and self.errors[-1].message == TOO_MANY_RULES:
                raise self.errors[-1]  # the rest is not even parsed: refused as it stands
            for key, node in found.items():
                sections[key].append((name, node))
                if key == "rules" and node.kind == "seq":
                    budget -= len(node.value)
        bands = self.single("bands", sections["bands"], self.bands, Bands())
        alert = self.single("alert", sections["alert"], self.alert, AlertPolicy())
        lists = self.lists(sections["lists"])
        features = self.features(sections["features"], lists)
        fields = known_fields(tuple(features))
        rules = self.rules(sections["rules"], fields, lists)
        if budget == MAX_RULES and not self.errors:
            # Not one rule in any file: such a rule set would score every transaction 0.
            self.errors.append(
                RuleError(
                    "the rule set has no rules, so it would score nothing; add at least one "
                    "rule under 'rules:'",
                    file=self.where_loaded
                    or next((f for f, _ in sections["rules"]), order[0] if order else None),
                )
            )
        if self.errors:
            rank = {name: i for i, name in enumerate(order)}
            self.errors.sort(key=lambda e: (rank.get(e.file or "", -1), e.line or 0, e.col or 0))
            shown = [_bounded(e) for e in self.errors[:MAX_ERRORS]]
            if len(self.errors) > MAX_ERRORS:
                rest = self.errors[MAX_ERRORS:]
                shown.append(
                    RuleError(f"... and {len(rest)} more problem(s) not shown", file=rest[0].file)
                )
            raise shown[0] if len(shown) == 1 else RuleSetError(shown)
        return RuleSet(
            version=version_of(self.texts),
            bands=bands,
            alert=alert,
            lists=lists,
            features=tuple(features),
            rules=tuple(rules),
            texts=dict(self.texts),
        )

    def read(self, name: str, max_rules: int = MAX_RULES) -> dict[str, YNode]:
        if not isinstance(self.texts[name], str):
            self.fail("the file's content must be text", None)
            return {}
        try:
            root = read_document(self.texts[name], max_rules=max_rules)
        except RuleError as exc:
            self.errors.append(exc.located(file=name))
            return {}
        if root is None or (root.kind == "scalar" and root.value is None):
            # An empty file is a mistake (a truncated save, a failed copy), not "no rules".
            self.fail(
                "the file is empty or holds only comments; a rule file sets at least one of "
                + ", ".join(TOP_KEYS),
                None,
            )
            return {}
        if root.kind != "map":
            self.fail("a rule file must be a mapping with keys " + ", ".join(TOP_KEYS), root)
            return {}
        self.keys(root, TOP_KEYS, "the rule file")
        found = {
            k: v
            for k, (_, v) in root.value.items()
            if k in TOP_KEYS and not (v.kind == "scalar" and v.value is None)
        }
        if not found and all(k in TOP_KEYS for k in root.value):
            self.fail("the file sets nothing: every key in it is empty", root)
        return found

    def single(self, key: str, found: list[tuple[str, YNode]], parse, default):
        values = []
        for file, node in found:
            self.file = file
            value = parse(node)
            if value is not None:
                values.append((file, node, value))
        for file, node, value in values[1:]:
            if value != values[0][2]:
                self.file = file
                self.fail(
                    f"'{key}' is set differently in {self.where(*values[0][:2])}; set "
                    "it in one file only",
                    node,
                )
        return values[0][2] if values else default

    def number(self, node: YNode, what: str) -> float | None:
        value = node.value if node.kind == "scalar" else None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(f"{what} must be a number, got {_shown(node.text) or node.kind!r}", node)
            return None
        return float(value)

    def bands(self, node: YNode) -> Bands | None:
        if node.kind != "map":
            self.fail("bands must be a mapping such as {medium: 40, high: 70}", node)
            return None
        self.keys(node, ("medium", "high"), "bands")
        got = {
            k: self.number(v, f"bands.{k}")
            for k, (_, v) in node.value.items()
            if k in ("medium", "high")
        }
        if None in got.values():
            return None
        bands = Bands(**{"medium": Bands.medium, "high": Bands.high, **got})
        if not 0 < bands.medium < bands.high <= 100:
            self.fail(
                f"bands need 0 < medium < high <= 100, got medium {bands.medium:g}, "
                f"high {bands.high:g}",
                node,
            )
            return None
        return bands

    def alert(self, node: YNode) -> AlertPolicy | None:
        if node.kind != "map":
            self.fail("alert must be a mapping such as {min_band: high, dedup: 10m}", node)
            return None
        self.keys(node, ("min_band", "dedup"), "alert")
        policy = {}
        if "min_band" in node.value:
            band_node = node.value["min_band"][1]
            band = band_node.value
            if band in ("medium", "high"):
                policy["min_band"] = Band.parse(band)
            else:
                self.fail(
                    f"alert.min_band must be medium or high, got {_shown(band_node.text)!r}",
                    band_node,
                    closest(str(band), ("medium", "high")),
                )
        if "dedup" in node.value:
            dedup_node = node.value["dedup"][1]
            try:
                policy["dedup_s"] = parse_duration(dedup_node.value)
            except ValueError as exc:
                self.fail(f"alert.dedup: {exc}", dedup_node)
        ok = len(policy) == len(set(node.value) & {"min_band", "dedup"})
        return AlertPolicy(**policy) if ok else None

    def name(self, key_node: YNode, what: str) -> bool:
        if not NAME.match(key_node.text):
            self.fail(
                f"{what} name '{_shown(key_node.text)}' must match [a-z][a-z0-9_]* (at most 64 "
                "characters)",
                key_node,
            )
            return False
        return True

    def lists(self, found: list[tuple[str, YNode]]) -> dict[str, tuple]:
        lists: dict[str, tuple] = {}
        for file, node in found:
            self.file = file
            if node.kind != "map":
                self.fail("lists must be a mapping of name -> [item, ...]", node)
                continue
            for name, (key_node, value) in node.value.items():
                if not (self.name(key_node, "list") and self.unique("list", name, key_node)):
                    continue
                items = self.list_items(name, value)
                if items is not None:
                    lists[name] = items
        return lists

    def list_items(self, name: str, node: YNode) -> tuple | None:
        if node.kind != "seq":
            self.fail(f"list '{name}' must be a list such as [a, b, c]", node)
            return None
        kinds = set()
        for item in node.value:
            value = item.value if item.kind == "scalar" else None
            if (
                isinstance(value, bool)
                or value is None
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                self.fail(
                    f"list '{name}' holds strings or numbers only, got "
                    f"{_shown(item.text) or item.kind!r}",
                    item,
                )
                return None
            kinds.add(str if isinstance(value, str) else float)
        if len(kinds) > 1:
            self.fail(f"list '{name}' mixes strings and numbers; quote the numbers", node)
            return None
        return tuple(item.value for item in node.value)

    def features(self, found: list[tuple[str, YNode]], lists: dict) -> list[FeatureSpec]:
        taken = {
            **{c: "a transaction field" for c in schema.NAMES},
            **{b: "a built-in feature" for b in BUILTIN},
        }
        specs: list[FeatureSpec] = []
        for file, node in found:
            self.file = file
            if node.kind != "map":
                self.fail("features must be a mapping of name -> {agg: ..., by: ...}", node)
                continue
            for name, (key_node, decl) in node.value.items():
                if not self.name(key_node, "feature"):
                    continue
                if name in taken or name in lists:
                    what = taken.get(name, "a list")
                    self.fail(f"feature '{name}' has the name of {what}", key_node)
                    continue
                if not self.unique("feature", name, key_node):
                    continue
                try:
                    spec = parse_feature(name, to_python(decl))
                except FeatureSpecError as exc:
                    at = (
                        decl.value[exc.key][1]
                        if decl.kind == "map" and exc.key in decl.value
                        else decl
                    )
                    self.fail(str(exc), at, exc.suggestion)
                    continue
                if spec.where is not None:
                    prefix = f"feature '{name}', where: "
                    where = decl.value["where"][1]
                    condition = self.expression(where, compile_condition, prefix, lists=lists)
                    if condition is None:
                        continue
                    spec = replace(spec, condition=condition)
                specs.append(spec)
        for name in lists:
            if name in taken:
                file, key_node = self.seen[("list", name)]
                self.file = file
                self.fail(f"list '{name}' has the name of {taken[name]}", key_node)
        return specs

    def rules(self, found, fields, lists) -> list[Rule]:
        rules: list[Rule] = []
        total = 0
        for file, node in found:
            self.file = file
            if node.kind != "seq":
                self.fail("rules must be a list of rules (each starting with '- id:')", node)
                continue
            total += len(node.value)
            if total > MAX_RULES:  # read_document stops first; this guards other callers
                self.fail(TOO_MANY_RULES, node)
                return rules
            for item in node.value:
                rule = self.rule(item, fields, lists)
                self.rule_id = None
                if rule is not None:
                    rules.append(rule)
        return rules

    def rule(self, node: YNode, fields, lists) -> Rule | None:
        if node.kind != "map":
            self.fail("a rule must be a mapping with id, when and score", node)
            return None
        before = len(self.errors)
        got = {k: v for k, (_, v) in node.value.items()}
        rule_id = self.rule_name(got.get("id"), node)
        self.rule_id = rule_id
        if rule_id is not None and not self.unique("rule id", rule_id, got["id"], any_case=True):
            rule_id = None
        group = self.group(got.get("group"))
        self.keys(node, RULE_KEYS, "a rule")
        for key in ("when", "score"):
            if key not in got:
                self.fail(f"rule has no '{key}'", node)
        expr = self.when(got["when"], fields, lists) if "when" in got else None
        score = self.number(got["score"], "score") if "score" in got else None
        if score is not None and not -100 <= score <= 100:
            self.fail(f"score must be between -100 and 100, got {score:g}", got["score"])
        enabled = got.get("enabled")
        if enabled is not None and not isinstance(enabled.value, bool):
            self.fail(f"enabled must be true or false, got {_shown(enabled.text)!r}", enabled)
        tags = self.tags(got.get("tags"))
        description = got.get("description")
        if description is not None and description.kind != "scalar":
            self.fail("description must be text", description)
        examples = {}
        if expr is not None and "examples" in got and len(self.errors) == before:
            examples = check_examples(got["examples"], expr, fields, lists, self.fail)
        if len(self.errors) > before or rule_id is None or expr is None or score is None:
            return None
        if group is not None:  # one spelling per group: the first one met
            group = self.groups.setdefault(group.casefold(), group)
        return Rule(
            id=rule_id,
            description=description.text if description and description.value is not None else "",
            when=expr.source,
            score=score,
            enabled=enabled.value if enabled is not None else True,
            tags=tags,
            group=group,
            file=self.file,
            line=node.line,
            expr=expr,
            examples=examples,
        )

    def rule_name(self, node: YNode | None, rule: YNode) -> str | None:
        if node is None:
            self.fail("rule has no 'id'", rule)
            return None
        if not _rule_name(node):
            self.fail(
                f"rule id {_shown(node.text) or node.kind!r} must match [A-Za-z][A-Za-z0-9_]* (at "
                "most 64 characters; unique ignoring case)",
                node,
            )
            return None
        return node.value

    def group(self, node: YNode | None) -> str | None:
        """A rule's ``group:`` (its points combine by max with the group's other hits)."""
        if node is None:
            return None
        if not _rule_name(node):
            self.fail(
                f"group {_shown(node.text) or node.kind!r} must be a name matching "
                "[A-Za-z][A-Za-z0-9_]* such as velocity (compared ignoring case)",
                node,
            )
            return None
        return node.value

    def tags(self, node: YNode | None) -> tuple[str, ...]:
        if node is None:
            return ()
        if node.kind != "seq" or any(t.kind != "scalar" or not t.text for t in node.value):
            self.fail("tags must be a list of names such as [amount, velocity]", node)
            return ()
        return tuple(t.text for t in node.value)

    def when(self, node: YNode, fields, lists):
        if node.kind != "scalar" or not node.text.strip():
            self.fail("when must be a condition such as: amount > 1000", node)
            return None
        return self.expression(node, compile_expression, fields=fields, lists=lists)

    def expression(self, node: YNode, compile_, prefix: str = "", **names):
        """``compile_(node.text, **names)``, or None with its errors located in the file."""
        try:
            return compile_(node.text, **names)
        except RuleSetError as exc:
            problems = exc.errors
        except RuleError as exc:
            problems = [exc]
        source = self.texts[self.file]
        for problem in problems:
            line, col = locate(source, node, (problem.col or 1) - 1)
            self.errors.append(
                RuleError(
                    prefix + problem.message,
                    file=self.file,
                    line=line,
                    col=col,
                    rule_id=self.rule_id,
                    suggestion=problem.suggestion,
                )
            )
        return None


def _rule_name(node: YNode) -> bool:
    """The node is a rule id or group name (:data:`RULE_ID`)."""
    return node.kind == "scalar" and isinstance(node.value, str) and bool(RULE_ID.match(node.value))


def _shown(text: str, limit: int = 60) -> str:
    """A value from a file quoted back in a message: one line, cut at ``limit``."""
    return clip(text, limit) if text else text


def _bounded(error: RuleError) -> RuleError:
    """``error`` with its message and suggestion on one bounded line, whatever a file held."""
    if len(error.message) <= MAX_MESSAGE and "\n" not in error.message and not error.suggestion:
        return error
    return RuleError(
        clip(error.message),
        file=error.file,
        line=error.line,
        col=error.col,
        rule_id=error.rule_id,
        suggestion=clip(error.suggestion, 80) if error.suggestion else None,
    )
