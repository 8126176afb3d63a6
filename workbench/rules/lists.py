"""Allow/block lists: the catalogue of list names, their kinds, and value validation.

A rule tests a transaction against a *maintained* list with ``card_id in
list("blocked_cards")``. Unlike a rule file's inline ``lists:`` (part of the rule set, changed
by publishing rules), a maintained list is data: its entries come from the database
(``list_entries``, edited in the dashboard) and from plain files ``rules/lists/<name>.txt``
(one value per line, ``#`` comments), and a change reaches the running workers without a
rule publication (:mod:`workbench.pipeline.lists`).

The names are a fixed catalogue (:data:`CATALOGUE`), so a misspelt name in a rule is refused
when the rule is loaded, with the nearest name suggested, instead of silently matching
nothing. Each list has a *kind* (card, merchant, terminal, country) that says which
transaction column it is meant for and which values it accepts (:func:`clean_value`):
values are validated before they reach the database, and entries are bounded
(:data:`MAX_ENTRIES` per list in the database and per list file, :data:`MAX_VALUE`
characters).

>>> clean_value("country", " fr ")
'FR'
>>> clean_value("card", "<script>")
Traceback (most recent call last):
...
ValueError: a card value holds letters, digits and . _ : - only (got '<script>')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.schema import ID_MAX_LEN

__all__ = [
    "CATALOGUE",
    "KINDS",
    "KIND_COLUMNS",
    "MAX_ENTRIES",
    "MAX_REASON",
    "MAX_VALUE",
    "ListSpec",
    "clean_reason",
    "clean_value",
    "kind_of",
]

KINDS = ("card", "merchant", "terminal", "country")
# The transaction column each kind is matched against (the schema has no merchant id: a
# merchant is known by its category).
KIND_COLUMNS = {
    "card": "card_id",
    "merchant": "merchant_category",
    "terminal": "terminal_id",
    "country": "country",
}
MAX_ENTRIES = 10_000  # entries per list in the database, and again per list file
MAX_VALUE = ID_MAX_LEN
MAX_REASON = 200

_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{ID_MAX_LEN}}}\Z")
_COUNTRY = re.compile(r"[A-Z]{2}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ListSpec:
    """One maintained list: its name, the kind of value it holds, allow or block."""

    name: str
    kind: str
    purpose: str  # "block" | "allow"


CATALOGUE: dict[str, ListSpec] = {
    f"{purpose}ed_{plural}": ListSpec(f"{purpose}ed_{plural}", kind, purpose)
    for kind, plural in (
        ("card", "cards"),
        ("merchant", "merchants"),
        ("terminal", "terminals"),
        ("country", "countries"),
    )
    for purpose in ("block", "allow")
}


def kind_of(name: str) -> str:
    """The kind of catalogue list ``name``; ValueError naming the nearest known list."""
    spec = CATALOGUE.get(name)
    if spec is None:
        from difflib import get_close_matches

        near = get_close_matches(str(name), sorted(CATALOGUE), n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ValueError(f"unknown list {str(name)[:64]!r}{hint}")
    return spec.kind


def clean_value(kind: str, value: object) -> str:
    """``value`` as stored in a list of ``kind``, or ValueError saying why not.

    Ids (card, terminal) and merchant categories: 1..128 of ``A-Z a-z 0-9 . _ : -``;
    countries: two letters (ISO 3166-1 alpha-2, upper-cased). Nothing else passes, so a
    list value never carries markup, quotes or control characters anywhere it is shown.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown list kind {str(kind)[:20]!r}: use one of {', '.join(KINDS)}")
    text = str(value if value is not None else "").strip()
    if kind == "country":
        text = text.upper()
        if not _COUNTRY.match(text):
            raise ValueError(f"a country is two letters such as FR (got {text[:20]!r})")
        return text
    if not text:
        raise ValueError(f"a {kind} value cannot be empty")
    if len(text) > MAX_VALUE:
        raise ValueError(f"a {kind} value has at most {MAX_VALUE} characters (got {len(text)})")
    if not _ID.match(text):
        raise ValueError(
            f"a {kind} value holds letters, digits and . _ : - only (got {text[:40]!r})"
        )
    return text


def clean_reason(reason: object) -> str:
    """A reason as stored: one line, no control characters, at most :data:`MAX_REASON`."""
    text = _CONTROL.sub(" ", str(reason or "")).strip()
    if len(text) > MAX_REASON:
        raise ValueError(f"a reason has at most {MAX_REASON} characters (got {len(text)})")
    return text


MAX_FILE_BYTES = 1_000_000


def read_list_files(directory) -> tuple[dict[str, list[str]], list[str]]:
    """The maintained lists written as files ``<directory>/<name>.txt`` (one value per line,
    ``#`` starts a comment), and one ``file:line: problem`` per refused line or file.

    A file whose name is not in :data:`CATALOGUE`, over :data:`MAX_FILE_BYTES`, a link, or not
    UTF-8 is refused whole; an invalid value refuses its line only; at most
    :data:`MAX_ENTRIES` values per list are kept. A missing directory holds no lists.
    """
    from pathlib import Path

    found: dict[str, list[str]] = {}
    problems: list[str] = []
    root = Path(directory)
    if not root.is_dir():
        return found, problems
    for path in sorted(root.glob("*.txt")):
        name = path.stem
        try:
            kind = kind_of(name)
            if path.is_symlink() or not path.is_file():
                raise ValueError("not a regular file")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES:,} bytes")
            text = path.read_text(encoding="utf-8")
        except (ValueError, OSError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        values: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                values.append(clean_value(kind, line))
            except ValueError as exc:
                problems.append(f"{path}:{number}: {exc}")
            if len(values) >= MAX_ENTRIES:
                problems.append(f"{path}:{number}: more than {MAX_ENTRIES:,} values; rest ignored")
                break
        found[name] = values
    return found, problems
