"""Output encoding: the one way a value reaches the analyst's browser as HTML.

Everything the dashboard shows came from outside at some point — a transaction field from a
replayed file or a topic, a rule description or a load error from a rule file, a mapping, a
user's notes or name — and is **text**, never markup. Panes that render HTML or Markdown
(``pn.pane.HTML``, ``pn.pane.Markdown``, ``pn.pane.Alert``), notifications (toasts) and
HTML table formatters interpret what they are given, so a card id of
``<img src=x onerror=alert(1)>`` would run in the browser.

The rule: a page builds HTML only with :func:`html` — a *literal* template whose ``{}``
fields are filled with escaped values — or :func:`text` for a value alone. Both return
:class:`Html`, a ``str`` that says "escaped already"; :func:`pane` and :func:`toast` accept
nothing else, so an unescaped string is refused where it would be rendered, not in review.
Markdown is never fed outside text: a message with emphasis is written as HTML here.

>>> html("Alert {id} closed by <b>{user}</b>", id=7, user="<img src=x onerror=alert(1)>")
'Alert 7 closed by <b>&lt;img src=x onerror=alert(1)&gt;</b>'
>>> text("a & b")
'a &amp; b'
>>> isinstance(html("<i>{}</i>", "x"), Html)
True
"""

from __future__ import annotations

import html as _html
import string
from typing import Any

__all__ = ["Html", "escape", "html", "join", "text"]


class Html(str):
    """HTML in which every outside value was escaped (made only by this module)."""

    __slots__ = ()


def escape(value: Any) -> str:
    """``value`` as HTML text: ``& < > " '`` escaped; ``None`` is the empty string."""
    return "" if value is None else _html.escape(str(value), quote=True)


def text(value: Any) -> Html:
    """One value as HTML text."""
    return value if isinstance(value, Html) else Html(escape(value))


class _Escaping(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Html):
            return value  # escaped already (a fragment built here)
        return escape(format(value, format_spec) if format_spec else value)


_FORMATTER = _Escaping()


def html(template: str, /, *args: Any, **values: Any) -> Html:
    """``template`` (a literal of ours) with each ``{}`` field filled by an escaped value.

    Fields may carry a format spec (``{amount:,.2f}``); the formatted text is escaped. A value
    that is :class:`Html` already (a fragment made by this module) is inserted as is.
    """
    return Html(_FORMATTER.vformat(template, args, values))


def join(parts: list[Html] | tuple[Html, ...], sep: str = "") -> Html:
    """Fragments made by this module, joined by the literal ``sep``."""
    for part in parts:
        if not isinstance(part, Html):
            raise TypeError("safe.join takes Html fragments only (made by safe.html/text)")
    return Html(sep.join(parts))
