"""Keyboard keys for a page: :class:`KeyListener` reports a key pressed outside text fields.

It sends the key's name only (never page content), and only while the listener is shown:
on another tab a key does nothing. The keys are :data:`KEYS` (the case queue's: see
:mod:`.queue`). A ``ReactiveHTML`` component: its script is bundled with the page, so it
works offline.
"""

from __future__ import annotations

import json

import panel as pn
import param

KEYS = {"j", "k", "ArrowDown", "ArrowUp", "[", "]", "c", "f", "n", "v"}


_KEYS_JS = """
const known = new Set(KNOWN);
document.addEventListener('keydown', (e) => {
  const t = e.target, tag = (t && t.tagName || '').toLowerCase();
  if (tag === 'input' || tag === 'textarea' || tag === 'select' ||
      (t && t.isContentEditable) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (!known.has(e.key)) return;
  if (keys.getClientRects().length === 0) return;  // another tab is shown
  e.preventDefault();
  data.key = e.key;
  data.presses = data.presses + 1;
});
"""


class KeyListener(pn.reactive.ReactiveHTML):
    """Reports the page's key presses (outside inputs) as ``key`` + a counter ``presses``."""

    key = param.String(default="")
    presses = param.Integer(default=0)

    _template = '<div id="keys" class="case-keys" style="width:0;height:0;overflow:hidden"></div>'
    _scripts = {  # noqa: RUF012 - Panel's class attribute
        "render": _KEYS_JS.replace("KNOWN", json.dumps(sorted(KEYS)))
    }
