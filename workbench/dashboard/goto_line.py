"""Moving the rule editor's cursor to a line from the server: a click on an error row.

Panel 1.9's ``CodeEditor`` has no cursor or scroll parameter, so this tiny
:class:`~panel.custom.JSComponent` (no imports: nothing is fetched, the page works offline)
finds the Ace editor view of the element with CSS class ``css`` and calls ``gotoLine`` on
it whenever :meth:`GotoLine.go` is called (``nonce`` changes, so the same line twice moves
the cursor twice).
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


class GotoLine(JSComponent):
    """Invisible; ``go(line, column)`` scrolls the editor named ``css`` to that line."""

    css = param.String(default="rule-editor")
    line = param.Integer(default=0)
    column = param.Integer(default=1)
    nonce = param.Integer(default=0)

    _esm = """
export function render({ model }) {
  model.on("nonce", () => {
    const view = window.Bokeh.index.query_one(
      (v) => v._editor !== undefined && (v.model.css_classes || []).includes(model.css)
    )
    if (view == null || model.line < 1) return
    view._editor.gotoLine(model.line, Math.max(model.column - 1, 0), true)
    view._editor.scrollToLine(model.line - 1, true, true, () => {})
    view._editor.focus()
  })
  return document.createElement("span")
}
"""

    def __init__(self, **params) -> None:
        super().__init__(width=0, height=0, margin=0, **params)

    def go(self, line: int, column: int | None = None) -> None:
        self.param.update(line=int(line), column=int(column or 1), nonce=self.nonce + 1)
