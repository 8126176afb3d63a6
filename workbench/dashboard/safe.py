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

What renders HTML, and how each is kept to :class:`Html`:

* **panes** — :class:`SafeHTML` (made by :func:`pane`, :func:`heading`, :func:`banner`) is
  the only HTML pane the pages use; its ``object`` parameter refuses a plain ``str``, so
  ``pane.object = f"..."`` fails at once. :func:`show` sets it only when it changed.
* **notifications** — Panel's toasts (notyf) set ``innerHTML = message``; :func:`toast`
  takes :class:`Html` only.
* **text that must stay text** (a diff, a file) — :func:`preformatted`: an escaped ``<pre>``
  (line breaks and monospace kept). ``pn.pane.Str`` is *not* safe: Panel 1.9 wraps its text
  in ``<pre>`` unescaped, and the browser renders it as HTML.
* **HTML tables** (the notebook's live tables) — :func:`frame_pane`, a ``pn.pane.DataFrame``
  with ``escape=True`` (pandas' ``to_html`` escapes each cell).
* **tables** — Panel's Tabulator shows ``str`` cells through Bokeh's ``StringFormatter``
  (a text node: escaped); an ``HTMLTemplateFormatter`` must use ``<%- value %>`` (escaped),
  never ``<%= value %>``.
* **Bokeh hover tooltips** — ``@field`` values are escaped by Bokeh unless the template
  (ours, literal) says ``{safe}``; never write ``{safe}``.
* **widget labels and options**, **editor annotations** — rendered as text nodes by Bokeh
  and Ace: plain ``str`` is right there (escaping it would show ``&lt;``).

``tests/unit/test_dashboard_safe.py`` refuses any other HTML-rendering call in the pages.

>>> html("Alert {id} closed by <b>{user}</b>", id=7, user="<img src=x onerror=alert(1)>")
'Alert 7 closed by <b>&lt;img src=x onerror=alert(1)&gt;</b>'
>>> text("a & b")
'a &amp; b'
>>> isinstance(html("<i>{}</i>", "x"), Html)
True
"""

from __future__ import annotations

import html as _html
import re
import string
from typing import Any

import panel as pn
import param
from bokeh.models import HTMLTemplateFormatter

__all__ = [
    "EMPTY",
    "Html",
    "SafeHTML",
    "banner",
    "escape",
    "frame_pane",
    "heading",
    "html",
    "join",
    "pane",
    "preformatted",
    "show",
    "show_frame",
    "show_text",
    "template_formatter",
    "text",
    "toast",
]


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


EMPTY = Html("")


class SafeHTML(pn.pane.HTML):
    """An HTML pane whose ``object`` is :class:`Html` only: a plain ``str`` (unescaped by
    construction) is refused when set, in tests as in production."""

    object = param.ClassSelector(class_=Html, default=EMPTY, doc="Escaped HTML (safe.html).")

    def __init__(self, object: Html = EMPTY, **params: Any) -> None:
        super().__init__(_checked(object), **params)


def _checked(obj: Any) -> Html:
    if not isinstance(obj, Html):
        raise TypeError(
            f"HTML for the browser must be safe.Html (made by safe.html/text), not "
            f"{type(obj).__name__}: {str(obj)[:60]!r}"
        )
    return obj


def pane(obj: Html = EMPTY, **params: Any) -> SafeHTML:
    """A :class:`SafeHTML` pane showing ``obj``; long words (an id of 128 characters) wrap
    instead of widening the page."""
    styles = {"overflow-wrap": "anywhere", **params.pop("styles", {})}
    return SafeHTML(obj, styles=styles, **params)


def show(target: SafeHTML, obj: Html) -> None:
    """Set ``target``'s HTML to ``obj`` (refused unless :class:`Html`); unchanged HTML is not
    sent to the browser again."""
    if _checked(obj) != target.object:
        target.object = obj


def heading(title: str, level: int = 3, **params: Any) -> SafeHTML:
    """A section heading (``<h3>`` by default); ``title`` is text."""
    tag = f"h{min(max(int(level), 1), 6)}"
    return pane(Html(f"<{tag}>{escape(title)}</{tag}>"), **params)


BANNER_STYLES = {
    "background": "#f8d7da",
    "color": "#842029",
    "border": "1px solid #f5c2c7",
    "border-radius": "4px",
    "padding": "4px 12px",
}


def banner(obj: Html = EMPTY, **params: Any) -> SafeHTML:
    """A red banner (what ``pn.pane.Alert(alert_type="danger")`` looked like, without its
    Markdown)."""
    return pane(obj, styles={**BANNER_STYLES, **params.pop("styles", {})}, **params)


_PRE = "<pre style='white-space:pre-wrap;overflow-wrap:anywhere;margin:0'>{}</pre>"


def preformatted(value: str = "", **params: Any) -> SafeHTML:
    """Text shown as is, monospace with its line breaks (a ``<pre>``, escaped here): for
    diffs and file content, which a Markdown fence would let out (a line of three
    backticks). Not ``pn.pane.Str``: Panel 1.9 puts its text into ``<pre>`` unescaped."""
    return pane(html(_PRE, value), **params)


def show_text(target: SafeHTML, value: str) -> None:
    """Set a :func:`preformatted` pane's text (shown as is)."""
    show(target, html(_PRE, value))


def frame_pane(frame: Any, **params: Any) -> pn.pane.DataFrame:
    """A DataFrame shown as an HTML table with every cell escaped (``escape=True`` always)."""
    params["escape"] = True
    return pn.pane.DataFrame(frame, **params)


def show_frame(target: pn.pane.DataFrame, frame: Any) -> None:
    """Replace a :func:`frame_pane`'s rows (refused unless it escapes its cells)."""
    if not isinstance(target, pn.pane.DataFrame) or not target.escape:
        raise TypeError("safe.show_frame sets a safe.frame_pane (escape=True) only")
    target.object = frame


def toast(kind: str, message: Html, duration: int = 4000) -> None:
    """A notification of ``kind`` (error, warning, info, success) when the session has a
    notification area. Panel's notyf toasts render ``message`` as HTML, hence :class:`Html`."""
    _checked(message)
    if kind not in ("error", "warning", "info", "success"):
        raise ValueError(f"unknown notification kind {kind!r}")
    if pn.state.notifications is not None:
        pn.state.notifications.send(message, duration=duration, type=kind)


# ``<%= name %>`` inserts a field as HTML; ``<%- name %>`` escapes it. A ``<%= %>`` whose
# expression is more than a name (a ternary choosing one of our colours) is allowed.
_RAW_FIELD = re.compile(r"<%=\s*[\w.$\[\]'\"]+\s*%>")


def template_formatter(template: str) -> HTMLTemplateFormatter:
    """A Tabulator/Bokeh ``HTMLTemplateFormatter`` for ``template`` (an underscore template of
    ours) that inserts no field unescaped: ``<%= value %>`` is refused, ``<%- value %>`` is
    the way.

    >>> template_formatter("<b><%- value %></b>").template
    '<b><%- value %></b>'
    """
    if _RAW_FIELD.search(template):
        raise ValueError(f"template inserts a field unescaped (use <%- %>): {template!r}")
    return HTMLTemplateFormatter(template=template)
