"""One browser session: its pages, and the one periodic callback that pulls hub deltas.

Everything here is created per session and referenced only by the session's document (the
periodic callback is stopped when the session is destroyed), so a closed session leaves
nothing in the process. A failing update is logged and skipped: it never reaches the hub, the
feed or other sessions.

The session's :class:`~workbench.auth.roles.Identity` (from the login,
:func:`~workbench.dashboard.login.session_identity`) is taken once, when the session is
built, and handed to every page that acts: the pages enable what the role allows, and
every action checks the role again on the server (:mod:`workbench.dashboard.actions`).
The Audit tab exists only in an admin's session.
"""

from __future__ import annotations

import functools
import logging
import time

import panel as pn

from workbench.auth.roles import Action, Identity, allowed
from workbench.dashboard import safe
from workbench.dashboard.audit_page import AuditView
from workbench.dashboard.case_view import CasesPage
from workbench.dashboard.editor import EditorView
from workbench.dashboard.evidence import parse_history_query
from workbench.dashboard.history import HistoryView
from workbench.dashboard.hub import Health, Hub
from workbench.dashboard.lists_page import ListsView
from workbench.dashboard.live import STATUS_EVERY_S, LiveView
from workbench.dashboard.login import session_identity, user_badge
from workbench.dashboard.parts import schedule
from workbench.dashboard.precision import RulePrecisionView
from workbench.dashboard.server import current_dsn, current_publisher_dsn, start_hub
from workbench.dashboard.theme import ACCENT, REFRESH_MS
from workbench.settings import Settings

log = logging.getLogger(__name__)

ALERTS_TAB, HISTORY_TAB, EDITOR_TAB, LISTS_TAB, AUDIT_TAB = 1, 2, 3, 4, 5


# Bokeh draws the tab headers inside a shadow root: the focus ring is given there.
_TAB_FOCUS = ".bk-tab:focus-visible { outline: 3px solid #1f4e79; outline-offset: 2px; }"


# Bokeh's tab headers take the focus (tabindex 0) but ignore keys: Enter/Space open the
# focused tab, the arrow keys move the focus along the tab bar (inline: works offline).
_TAB_KEYS = """document.addEventListener("keydown", (e) => {
  const tab = e.composedPath()[0];
  if (!tab || !tab.classList || !tab.classList.contains("bk-tab")) return;
  if (e.key === "Enter" || e.key === " ") { e.preventDefault(); tab.click(); }
  const next = e.key === "ArrowRight" ? tab.nextElementSibling
    : e.key === "ArrowLeft" ? tab.previousElementSibling : null;
  if (next && next.classList.contains("bk-tab")) { e.preventDefault(); next.focus(); }
}, true);"""


class Session:
    """The pages of one browser session and its pull loop."""

    def __init__(
        self,
        hub: Hub,
        dsn: str,
        settings: Settings | None = None,
        *,
        identity: Identity | None = None,
        publisher_dsn: str | None = None,
    ) -> None:
        settings = settings or Settings.load()
        self.identity = identity or session_identity()
        self.hub = hub
        self.view: pn.viewable.Viewable | None = None
        self.seq = 0
        self.failures = 0
        self._last_status = time.monotonic()
        self.live = LiveView(notify=_toast)
        self.alerts = CasesPage(dsn, self.identity)  # the Alerts tab is the case queue
        self.history = HistoryView(dsn)
        # The editor reads as the dashboard; it publishes rule sets as the publisher's role.
        self.editor = EditorView(
            dsn,
            settings.rules_dir,
            identity=self.identity,
            publisher_dsn=publisher_dsn or current_publisher_dsn(dsn),
            apply_enabled=settings.editor_apply,
        )
        self.precision = RulePrecisionView(dsn)  # per-rule precision from analyst labels
        self.lists = ListsView(dsn, self.identity)
        self.alerts.case.alerts.evidence.on_history = self.open_history
        pages = [
            ("Live", self.live),
            ("Alerts", _contained(self.alerts.panel)),
            ("History", self.history),
            ("Rules", pn.Column(self.editor, self.precision, sizing_mode="stretch_width")),
            ("Lists", self.lists),
        ]
        self.audit: AuditView | None = None
        if allowed(self.identity.role, Action.READ_AUDIT):  # its load checks again
            self.audit = AuditView(dsn, self.identity)
            pages.append(("Audit", self.audit))
        self.tabs = pn.Tabs(
            *pages,
            # every page is built with the session: components created after the page has
            # loaded would link Panel's stylesheets from its CDN (unreachable offline)
            dynamic=False,
            stylesheets=[_TAB_FOCUS],
        )
        self.tabs.param.watch(self._on_tab, "active")
        self.banner = safe.banner(visible=False, css_classes=["rules-banner"])

    def _banner(self, health: Health) -> None:
        """A red banner on every page while the newest rule-set load was refused."""
        text = rules_banner(health)
        safe.show(self.banner, text)
        visible = bool(text)
        if visible != self.banner.visible:
            self.banner.visible = visible

    def open_history(self, card: str, at) -> None:
        """Show the History drill-down of ``card`` around ``at`` (from an alert's detail)."""
        self.tabs.active = HISTORY_TAB
        schedule(functools.partial(self.history.show_card_at, card, at))

    def _on_tab(self, event) -> None:
        """Pages that read the database load when first shown, not for every session."""
        if event.new == ALERTS_TAB:
            schedule(self.alerts.refresh)
        elif event.new == HISTORY_TAB and not self.history.loaded:
            schedule(self.history.load_preset)
        elif event.new == EDITOR_TAB and not self.editor.loaded:
            schedule(self.editor.load)
            schedule(self.precision.load)
        elif event.new == LISTS_TAB:
            schedule(self.lists.load)
        elif event.new == AUDIT_TAB and self.audit is not None:
            schedule(self.audit.load)

    def pull(self) -> None:
        """One periodic update: everything new in the hub since the last one."""
        try:
            delta = self.hub.delta(self.seq)
            now = time.monotonic()
            if delta.seq == self.seq:
                self.live.flush_tables()  # rows held back by the table throttle
                if now - self._last_status >= STATUS_EVERY_S:  # rates decay, status stalls
                    self.live.update_status(delta)
                    self._last_status = now
                return
            self._last_status = now
            first, self.seq = self.seq == 0, delta.seq  # a failed delta is never re-applied
            with pn.io.hold():
                self.live.update(delta, first=first)
                if self.tabs.active == ALERTS_TAB:  # hidden: reloaded when shown
                    self.alerts.note_open_alerts(delta.kpis.open_alerts)
                self._banner(delta.health)
        except Exception:  # a broken session must not take anything else down
            self.failures += 1
            log.exception("dashboard session update failed")


def create_app(hub: Hub | None = None, dsn: str | None = None) -> pn.viewable.Viewable:
    """The whole app for the current session (``panel serve`` calls this per session)."""
    return create_session(hub, dsn).view


def create_session(
    hub: Hub | None = None,
    dsn: str | None = None,
    *,
    identity: Identity | None = None,
    publisher_dsn: str | None = None,
) -> Session:
    """A :class:`Session` with its pull loop started when inside a served document; its
    identity is the login's (:func:`~workbench.dashboard.login.session_identity`) unless
    given. Rule publication uses ``publisher_dsn`` (default: the reader's ``dsn``)."""
    # Per session, not at import: called inside a served document, Panel keeps these
    # settings for that document only, so an import-time call gave the first session after
    # a server start its toasts (notifications) and every later one none.
    pn.extension("tabulator", "codeeditor", notifications=True, sizing_mode="stretch_width")
    hub = hub or start_hub(dsn)
    session = Session(hub, dsn or current_dsn(), identity=identity, publisher_dsn=publisher_dsn)
    header = safe.pane(
        safe.html(
            "<div class='wb-header' style='display:flex;align-items:baseline;gap:12px'>"
            "<h2 style='margin:4px 0;color:{accent}'>Fraud Workbench</h2>"
            "<span style='margin-left:auto'>{badge}</span></div>",
            accent=ACCENT,
            badge=user_badge(session.identity),
        ),
        sizing_mode="stretch_width",
    )
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.curdoc.template = _page_template()
        callback = pn.state.add_periodic_callback(session.pull, period=REFRESH_MS)
        pn.state.on_session_destroyed(lambda _ctx: callback.stop())
    session.pull()
    linked = parse_history_query(_query_args())  # ?card=...&at=... opens the drill-down
    if linked is not None:
        session.open_history(*linked)
    session.view = pn.Column(header, session.banner, session.tabs, sizing_mode="stretch_width")
    return session


def _contained(page: pn.viewable.Viewable) -> pn.FlexBox:
    """``page`` in a box that scrolls sideways itself when the page is wider than the
    screen: a FlexBox does not pass its children's minimum width up to the tabs, so one wide
    page cannot make every other page scroll sideways on a phone."""
    return pn.FlexBox(
        page, sizing_mode="stretch_width", styles={"overflow-x": "auto", "max-width": "100%"}
    )


@functools.cache
def _page_template():
    """Panel's page template plus a viewport meta tag: without it a phone lays the page out
    980 px wide and zooms out (Panel 1.9's base template has none; a document's ``template``
    is the hook its server renders the page with)."""
    from panel.io.resources import _env

    return _env.from_string(
        "{% extends base %}{% block preamble %}{{ super() }}"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>.bk-tab:focus-visible,button:focus-visible,input:focus-visible"
        "{outline:3px solid #1f4e79;outline-offset:2px}</style>"
        f"<script>{_TAB_KEYS}</script>"
        "{% endblock %}"
    )


def _query_args() -> dict:
    """The page URL's query arguments of this session ({} outside a served document)."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return {}
    return dict(doc.session_context.request.arguments or {})


def _toast(message: safe.Html) -> None:
    safe.toast("error", message, duration=4000)


def rules_banner(health: Health) -> safe.Html:
    """The banner HTML when the newest rule-set load was rejected (empty otherwise); the
    error text (a file name, a rule id, a message quoting the file) is escaped, its line
    breaks kept."""
    if health.reload_status != "rejected":
        return safe.EMPTY
    scoring = health.rule_set_version or "the previous rules"
    lines = (health.reload_error or "no details").splitlines() or ["no details"]
    return safe.html(
        "<b>Rule change refused</b> (version {}); still scoring with <code>{}</code>.<br>{}",
        health.reload_version,
        scoring,
        safe.join([safe.text(line) for line in lines], "<br>"),
    )
