"""Output encoding: ``workbench/dashboard/safe.py`` and a check that no page renders HTML
around it.

The source check reads every module of the dashboard and of the notebook-facing analysis
package (an AST, not a grep) and refuses each way a string becomes markup in the browser
outside ``safe.py``: HTML/Markdown/Alert/Str panes, Bokeh ``Div``, ``pn.panel``,
notifications, ``HTMLTemplateFormatter``, assignments to ``.object``, string literals and
f-strings given as layout children (Panel makes a ``str`` child a Markdown pane), a ``{safe}``
tooltip format and a ``<%= field %>`` template. It is itself tested on small snippets with
one violation each, so a check that finds nothing cannot pass silently.
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

import pandas as pd
import pytest

from workbench.dashboard import safe
from workbench.dashboard.hub import Health

REPO = Path(__file__).resolve().parents[2]
CHECKED = sorted(
    p
    for folder in ("workbench/dashboard", "workbench/analysis")
    for p in (REPO / folder).glob("*.py")
    if p.name != "safe.py"
)
HOSTILE = '<img src=x onerror="window.__pwned=1">'

# Calls that render their argument as HTML or Markdown (by the called name's last part).
RENDERING = {
    "Markdown",
    "HTML",
    "Alert",
    "Str",
    "LaTeX",
    "Div",
    "Paragraph",
    "PreText",
    "HTMLTemplateFormatter",
    "panel",
}
LAYOUTS = {"Row", "Column", "FlexBox", "Card", "GridBox", "WidgetBox", "Accordion", "Tabs"}
CHILD_METHODS = {"append", "insert", "extend"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_layout_attribute(func: ast.AST) -> bool:
    """``self.<name>.append`` or ``<...>.objects.append``: a component's children (a local
    list being built, ``lines.append(...)``, is not one)."""
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value
    return isinstance(owner, ast.Attribute) and (
        owner.attr == "objects" or (isinstance(owner.value, ast.Name) and owner.value.id == "self")
    )


def _is_text(node: ast.AST) -> bool:
    """A string built in the source: a literal, an f-string, ``+``/``%`` of strings."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    return False


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Each HTML-rendering path in ``source`` that skips ``safe``, as ``file:line: why``."""
    found: list[str] = []

    def bad(node: ast.AST, why: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {why}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in RENDERING:
                bad(node, f"{name}(...) renders HTML: use safe.pane/safe.preformatted")
            if name == "Html":
                bad(node, "Html(...) marks text as escaped without escaping it: use safe.html")
            if name == "html" and _name(getattr(node.func, "value", None)) == "safe":
                template = node.args[0] if node.args else None
                literal = isinstance(template, ast.Constant) and isinstance(template.value, str)
                constant = isinstance(template, ast.Name) and template.id.lstrip("_").isupper()
                if not (literal or constant):
                    bad(node, "safe.html's template must be a literal (values go in its fields)")
            if name == "DataFrame" and _name(getattr(node.func, "value", None)) == "pane":
                bad(node, "pn.pane.DataFrame renders HTML: use safe.frame_pane")
            children = node.args if name in LAYOUTS else []
            if name in CHILD_METHODS and _is_layout_attribute(node.func):
                children = node.args[1:] if name == "insert" else node.args
            for child in children:
                if isinstance(child, ast.Starred):
                    child = child.value
                elements = child.elts if isinstance(child, ast.List | ast.Tuple) else [child]
                if name == "Tabs" and isinstance(child, ast.Tuple):
                    elements = elements[1:]  # (title, page): a tab title is text
                if any(_is_text(e) for e in elements):
                    bad(node, f"a str child of {name}(...) becomes Markdown: use safe")
        elif isinstance(node, ast.Attribute) and node.attr == "notifications":
            bad(node, "notifications render HTML: use safe.toast")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and t.attr == "object":
                        bad(node, ".object = ... : use safe.show / safe.show_text")
                    if isinstance(t, ast.Attribute) and t.attr == "objects":
                        value = node.value
                        items = value.elts if isinstance(value, ast.List) else []
                        if any(_is_text(e) for e in items):
                            bad(node, "a str in .objects becomes Markdown: use safe")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "{safe}" in node.value:
                bad(node, "a {safe} tooltip format inserts a field as HTML")
            if safe._RAW_FIELD.search(node.value):
                bad(node, "<%= field %> inserts a field unescaped: use <%- %>")
    return found


# -- the source check ----------------------------------------------------------------------


def test_the_source_check_reads_the_pages():
    names = {p.name for p in CHECKED}
    assert {"live.py", "alerts_page.py", "history.py", "editor.py", "session.py"} <= names
    assert "live.py" in {p.name for p in CHECKED if p.parent.name == "analysis"}


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_page_renders_html_outside_safe(path):
    assert violations(path.read_text(), str(path.relative_to(REPO))) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "p = pn.pane.Markdown('x')",
        "p = pn.pane.HTML(f'<b>{card}</b>')",
        "p = pn.pane.Alert('x', alert_type='danger')",
        "p = pn.pane.Str(diff)",
        "d = Div(text=value)",
        "p = pn.panel(value)",
        "t = pn.pane.DataFrame(frame, escape=True)",
        "pn.state.notifications.error(message)",
        "f = HTMLTemplateFormatter(template=t)",
        "self.message.object = f'**Not saved:** {exc}'",
        "self.message.object = safe_looking",
        "a.object, b = x, y",
        "col = pn.Column('### Heading', table)",
        "col = pn.Row(f'card {card}', table)",
        "col = pn.Column(text + '!', table)",
        "self.plots.append(f'card {card}')",
        "self.plots.insert(0, '### Heading')",
        "self.plots.objects.extend(['x'])",
        "col = pn.Column(*['### Heading'], table)",
        "tabs = pn.Tabs(('Live', '### x'))",
        "col.objects = [f'No transactions of card {card}']",
        "HoverTool(tooltips=[('card', '@card_id{safe}')])",
        "T = '<span><%= value %></span>'",
        "x = safe.Html(card)",
        "x = Html(f'<b>{card}</b>')",
        "x = safe.html(f'<b>{card}</b>')",
        "x = safe.html(template, card)",
    ],
)
def test_the_source_check_catches_each_kind_of_violation(snippet):
    assert len(violations(snippet)) >= 1, snippet


def test_the_source_check_passes_the_safe_forms():
    ok = """
header = safe.pane(safe.html("<h2>{}</h2>", title))
row = safe.html(_ROW, key, value)
col = pn.Column(safe.heading("Live"), table, sizing_mode="stretch_width")
safe.show(self.message, safe.html("<b>Not saved:</b> {}", exc))
safe.toast("error", safe.html("card {}", card))
tabs = pn.Tabs(("Live", live), ("Alerts", alerts))
t = safe.frame_pane(frame, index=False)
f = safe.template_formatter("<b><%- value %></b>")
hover = HoverTool(tooltips=[("card", "@card_id")])
self.plots.append(table)
lines.append(f"card {card}")
frame.insert(0, "time", values)
"""
    assert violations(ok) == []


# -- safe.py --------------------------------------------------------------------------------


def test_html_escapes_values_not_the_template():
    out = safe.html("<b>{}</b> {x:,.2f}", HOSTILE, x=1234.5)
    assert out == "<b>&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;</b> 1,234.50"
    assert isinstance(out, safe.Html)
    assert safe.html("{}", safe.html("<i>{}</i>", "<")) == "<i>&lt;</i>"  # fragments nest
    assert safe.text(None) == "" and safe.text("'&") == "&#x27;&amp;"


def test_a_plain_str_is_refused_where_it_would_render():
    pane = safe.pane(safe.text("ok"))
    with pytest.raises(TypeError):
        safe.pane("<b>raw</b>")
    with pytest.raises(TypeError):
        safe.show(pane, "<b>raw</b>")
    with pytest.raises(ValueError):
        pane.object = "<b>raw</b>"  # the parameter itself refuses it
    with pytest.raises(TypeError):
        safe.toast("error", HOSTILE)
    with pytest.raises(TypeError):
        safe.join([safe.text("a"), "<b>"])
    assert not isinstance(safe.text("a") + "<b>", safe.Html)  # concatenation loses the mark
    assert pane.object == "ok"


def test_show_and_heading_and_preformatted_escape():
    pane = safe.pane()
    safe.show(pane, safe.html("card {}", HOSTILE))
    assert "<img" not in pane.object and "&lt;img" in pane.object
    assert safe.heading("<script>x</script>", 4).object == "<h4>&lt;script&gt;x&lt;/script&gt;</h4>"
    diff = "+ description: x\n```\n<script>window.__pwned=1</script>\n"
    pre = safe.preformatted(diff)
    assert pre.object.startswith("<pre") and "<script>" not in pre.object
    assert "&lt;script&gt;" in pre.object and "\n```\n" in pre.object  # lines kept
    safe.show_text(pre, "a < b")
    assert "a &lt; b" in pre.object


def test_the_template_formatter_refuses_an_unescaped_field():
    assert safe.template_formatter("<b><%- value %></b>").template == "<b><%- value %></b>"
    ternary = "<span style=\"color:<%= value == 'High' ? 'red' : 'green' %>\"><%- value %></span>"
    assert safe.template_formatter(ternary).template == ternary
    for raw in ("<%= value %>", "<%=value%>", "<%= row.card_id %>", "<%= data['x'] %>"):
        with pytest.raises(ValueError):
            safe.template_formatter(raw)


def test_frame_pane_always_escapes():
    pane = safe.frame_pane(pd.DataFrame({"card": [HOSTILE]}), escape=False)
    shown = html.unescape(pane.get_root().text)  # the model's text is escaped for transport
    assert pane.escape and "&lt;img" in shown and "<img" not in shown
    safe.show_frame(pane, pd.DataFrame({"card": ["<b>"]}))
    with pytest.raises(TypeError):
        safe.show_frame(safe.pane(), pd.DataFrame())


def test_toast_outside_a_session_is_a_no_op_and_checks_its_kind():
    safe.toast("error", safe.text("x"))  # no notification area here: nothing to show
    with pytest.raises(ValueError):
        safe.toast("alert", safe.text("x"))


# -- the pages' HTML ------------------------------------------------------------------------


def test_the_rule_error_banner_escapes_the_error_and_keeps_its_lines():
    from workbench.dashboard.session import rules_banner

    health = Health(
        reload_status="rejected",
        reload_version=HOSTILE,
        reload_error=f"rules/x.yaml:3:9 unknown field '{HOSTILE}'\nsecond line",
        rule_set_version="v1",
    )
    text = rules_banner(health)
    assert isinstance(text, safe.Html) and "<img" not in text
    assert "<br>second line" in text and "<code>v1</code>" in text
    assert rules_banner(Health(reload_status="accepted")) == ""


def test_the_alert_summary_escapes_every_stored_value():
    from workbench.dashboard.alerts_page import _summary_html

    alert = {
        "id": 7,
        "status": "closed",
        "disposition": "false_positive",
        "assignee": HOSTILE,
        "card_id": HOSTILE,
        "risk_score": 91.0,
        "band": "High",
        "hit_count": 1,
        "rule_set_version": "v1",
    }
    tx = pd.DataFrame(
        [
            {
                "tx_id": "[x](javascript:alert(1))",
                "ts": pd.Timestamp("2026-01-01", tz="UTC"),
                "amount": 12.5,
                "currency": "EUR",
                "merchant_category": "{{7*7}}",
                "terminal_id": HOSTILE,
                "country": "FR",
                "channel": "web",
                "device_id": "\u202eevil",
            }
        ]
    )
    text = _summary_html(alert, tx)
    assert "<img" not in text and text.count("&lt;img") == 3
    assert "[x](javascript:alert(1))" in text and "{{7*7}}" in text


def test_the_health_panel_escapes_worker_names_and_rule_errors():
    from workbench.dashboard.hub import Delta, Hub

    hub = Hub()
    hub.set_health(reload_status="rejected", reload_error=HOSTILE)
    delta: Delta = hub.delta(0)
    from workbench.dashboard.live_health import health_html

    text = health_html(delta)
    assert "<img" not in text and "&lt;img" in text and text.startswith("<table")


def test_table_titles_from_data_are_escaped_cells_stay_text():
    from workbench.dashboard.parts import read_only_table

    table = read_only_table(pd.DataFrame({"id": [1]}), "t", 100)
    assert table.titles == {}  # constant names: nothing to escape
    table.value = pd.DataFrame({HOSTILE: [HOSTILE], "band": ["High"]})
    assert table.titles == {HOSTILE: safe.escape(HOSTILE)}
    assert "<%- value %>" in table.formatters["band"].template
