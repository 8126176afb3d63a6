"""The limits of a rule set, declared once (the README's rules section lists them).

A rules directory is data anyone with write access to it can change, so its cost is bounded
before any of it is parsed: the number of files is counted before one is opened, sizes come
from ``os.stat`` before one is read, and the rule count stops the parse as soon as it is
passed. A directory over a limit is refused in milliseconds whatever it holds.
"""

from __future__ import annotations

MAX_FILES = 100  # rule files (*.yaml, *.yml) directly in a rules directory, or named at once
MAX_FILE_BYTES = 1 << 20  # one rule file (1 MiB)
MAX_TOTAL_BYTES = 4 << 20  # every rule file of a rule set together (4 MiB)
MAX_RULES = 5000  # rules of a rule set, every file together
MAX_DEPTH = 64  # nesting of YAML collections in one file

TOO_MANY_RULES = f"a rule set holds at most {MAX_RULES} rules"

# What a refusal may show: messages are one line of at most MAX_MESSAGE characters (a value
# quoted back from a file is cut, never a whole file), and at most MAX_ERRORS problems are
# listed (then one line says how many more there were).
MAX_MESSAGE = 300
MAX_ERRORS = 100


def clip(text: object, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (line breaks shown as ``⏎``) and at most ``limit`` characters.

    >>> clip("a\\nb")
    'a⏎b'
    >>> clip("x" * 10, 5)
    'xxxx…'
    """
    one = str(text).replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎")
    return one if len(one) <= limit else one[: max(limit - 1, 0)] + "…"


def size(n: int) -> str:
    """Bytes as the README writes limits: ``1 MiB``, ``512 KiB``, ``100 bytes``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n:,} bytes"
