"""Tokens of the rule expression language, read by a hand-written scanner.

The scanner is the first line of defence: it knows every character the language allows and
refuses the rest with a message aimed at people who write Python or SQL by habit (``**``,
``=``, ``&&``, attribute access). Limits on length and token count are checked here, so a
hostile expression is refused before any parsing work is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.errors import RuleError

MAX_LENGTH = 2000
MAX_TOKENS = 400

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})

_OPERATORS = frozenset(
    ("<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",")
)
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = "0123456789"
_DIGIT_SET = frozenset(_DIGITS)
_SPACE = re.compile(r"\s+")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}

# Characters people try from other languages, with what to write instead.
_REFUSED = {
    "**": "the power operator '**' is not allowed",
    "//": "floor division '//' is not allowed; use round(a / b)",
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "<>": "use '!=' instead of '<>'",
    "=": "use '==' to compare",
    "!": "use 'not' instead of '!'",
    "&": "use 'and' instead of '&'",
    "|": "use 'or' instead of '|'",
    ".": "attribute access is not allowed",
    ":": "':' is not allowed here (no lambdas, slices or dictionaries)",
    "{": "'{' is not allowed (no dictionaries or sets)",
    "}": "'}' is not allowed",
    "@": "'@' is not allowed",
    "^": "'^' is not allowed",
    "~": "'~' is not allowed; use 'not'",
    ";": "';' is not allowed",
    "`": "'`' is not allowed",
    "#": "comments are not allowed inside an expression",
    "$": "'$' is not allowed",
    "?": "'?' is not allowed",
}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is NUM, STR, NAME, OP or END; ``pos`` is its 0-based offset."""

    kind: str
    text: str
    value: object
    pos: int


def error(message: str, pos: int, suggestion: str | None = None) -> RuleError:
    """A RuleError located at a 0-based offset inside the expression (column = offset + 1)."""
    return RuleError(message, col=pos + 1, suggestion=suggestion)


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text`` followed by an END token, or a RuleError at the first bad one."""
    if not isinstance(text, str):
        raise error("an expression must be text", 0)
    if len(text) > MAX_LENGTH:
        raise error(f"expression is too long ({len(text)} characters, at most {MAX_LENGTH})", 0)
    tokens: list[Token] = []
    pos, end = 0, len(text)
    while pos < end:
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
            continue
        if len(tokens) >= MAX_TOKENS:
            raise error(f"expression has too many tokens (at most {MAX_TOKENS})", pos)
        tokens.append(token := _next(text, pos))
        pos += len(token.text)
    tokens.append(Token("END", "", None, end))
    return tokens


def _next(text: str, pos: int) -> Token:
    ch = text[pos]
    if ch in _DIGITS or (ch == "." and text[pos + 1 : pos + 2] in _DIGIT_SET):
        match = _NUMBER.match(text, pos)
        assert match is not None  # the first character is a digit or ".digit"
        after = text[match.end() : match.end() + 1]
        if after and (after.isalnum() or after in "_."):
            raise error(f"malformed number '{text[pos : match.end() + 1]}'", pos)
        value = float(match.group())
        if value == float("inf"):
            raise error(f"number '{match.group()[:40]}' is out of range", pos)
        return Token("NUM", match.group(), value, pos)
    if ch.isalpha() or ch == "_":
        match = _NAME.match(text, pos)
        if match is None:  # a non-ASCII letter
            raise error(f"unexpected character {ch!r}", pos)
        return Token("NAME", match.group(), match.group(), pos)
    if ch in "'\"":
        return _string(text, pos)
    for op in (text[pos : pos + 2], ch):  # two-character operators first: "<=" before "<"
        if op in _REFUSED:
            raise error(_REFUSED[op], pos)
        if op in _OPERATORS:
            return Token("OP", op, op, pos)
    raise error(f"unexpected character {ch!r}", pos)


def _string(text: str, start: int) -> Token:
    quote, pos, out = text[start], start + 1, []
    while pos < len(text):
        ch = text[pos]
        if ch == quote:
            return Token("STR", text[start : pos + 1], "".join(out), start)
        if ch == "\\":
            escaped = text[pos + 1 : pos + 2]
            if escaped not in _ESCAPES:
                raise error(f"unknown escape '\\{escaped}' in string", pos)
            out.append(_ESCAPES[escaped])
            pos += 2
            continue
        if ch == "\n":
            break
        out.append(ch)
        pos += 1
    raise error("string is not closed", start)
