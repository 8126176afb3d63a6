"""One browser session: its pages, and how it pulls hub deltas.

A session pulls when the hub wakes it (the feed got batch summaries: a commit reaches the
page within milliseconds), on average at most once every
:data:`~workbench.dashboard.theme.REFRESH_MS` (a token bucket holding :data:`BURST`
updates: a commit right after an update is still shown at once, a wake-up beyond the rate
waits for the next token, so a busy pipeline costs a session two updates a second), and on
a periodic tick every :data:`~workbench.dashboard.live.STATUS_EVERY_S`
(rates decay and the status turns "stalled" while nothing arrives; table rows held back by
their throttle are streamed). The Live page is updated only while its tab is shown: a hidden
one costs nothing but its toasts, and catches up from the hub when shown again.

Everything here is created per session and referenced only by the session's document (the
hub holds the session's wake-up weakly, and the periodic callback and the wake-up are removed
when the session is destroyed), so a closed session leaves nothing in the process. A failing
update is logged and skipped: it never reaches the hub, the feed or other sessions.

Pages are built lazily: the page is served with its header, tab bar and a "Loading…"
placeholder at once; the first page is built once the browser shows them, every other page on
its first showing. A page never opened reads nothing and is sent no update.

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
from collections.abc import Awaitable, Callable
from typing import Any

import panel as pn
from panel.io.state import set_curdoc

from workbench.auth.roles import Action, Identity, allowed
from workbench.dashboard import safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.audit_page import AuditView
from workbench.dashboard.case_view import CasesPage
from workbench.dashboard.editor import EditorView
from workbench.dashboard.evidence import parse_history_query
from workbench.dashboard.history import HistoryView
from workbench.dashboard.hub import Health, Hub
from workbench.dashboard.lists_page import ListsView
from workbench.dashboard.live import STATUS_EVERY_S, LiveView
from workbench.dashboard.live_toasts import ToastArea
from workbench.dashboard.login import session_identity, user_badge
from workbench.dashboard.parts import schedule
from workbench.dashboard.precision import RulePrecisionView
from workbench.dashboard.rule_health_page import RuleHealthView
from workbench.dashboard.server import (
    current_dsn,
    current_publisher_dsn,
    retrieve_closed_socket_errors,
    start_hub,
)
from workbench.dashboard.shadow_page import ShadowView
from workbench.dashboard.theme import ACCENT, REFRESH_MS
from workbench.settings import Settings

log = logging.getLogger(__name__)

LIVE_TAB, ALERTS_TAB, HISTORY_TAB, EDITOR_TAB, LISTS_TAB, AUDIT_TAB = range(6)
BURST = 2.0  # updates a session may make at once after a quiet spell (see the docstring)


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
    """The pages of one browser session and its pull loop.

    A page is built the first time it is shown (:meth:`show`): until then its tab holds a
    "Loading <page>…" placeholder and its view does not exist, so it reads nothing and costs
    nothing; the pull loop feeds the Live view only once it is built. Outside a served
    document nothing is built until :meth:`show` or :meth:`build` is called.
    """

    def __init__(
        self,
        hub: Hub,
        dsn: str,
        settings: Settings | None = None,
        *,
        identity: Identity | None = None,
        publisher_dsn: str | None = None,
        active: int = LIVE_TAB,
    ) -> None:
        self.settings = settings or Settings.load()
        self.identity = identity or session_identity()
        self.hub, self.dsn, self.publisher_dsn = hub, dsn, publisher_dsn
        self.view: pn.viewable.Viewable | None = None
        self.seq = 0  # the hub sequence number this session has seen
        self.live_seq = 0  # and its Live page (behind while the page is hidden; 0: new)
        self.failures = 0
        self._last_status = time.monotonic()
        self._tokens, self._tokens_at = BURST, time.monotonic()  # updates allowed now
        self._doc: Any = None  # the served document (None outside a server)
        self._wake_pending = False
        self._deferred = False
        self.live: LiveView | None = None
        self.toast_area = ToastArea()  # the Live page's High-risk toasts, over every page
        self.alerts: CasesPage | None = None  # the Alerts tab is the case queue
        self.history: HistoryView | None = None
        self.editor: EditorView | None = None
        self.precision: RulePrecisionView | None = None  # per-rule precision from labels
        self.shadow: ShadowView | None = None  # the challenger rule set beside the active one
        self.rule_health: RuleHealthView | None = None  # fire rates, drift, overlap, capacity
        self.lists: ListsView | None = None
        self.audit: AuditView | None = None
        pages = ("Live", "Alerts", "History", "Rules", "Lists")
        if allowed(self.identity.role, Action.READ_AUDIT):  # its load checks again
            pages += ("Audit",)
        self.page_names = list(pages)
        self._holders = [
            pn.Column(loading_placeholder(name), sizing_mode="stretch_width")
            for name in self.page_names
        ]
        self._built: set[int] = set()  # pages in their tabs
        self._opening: set[int] = set()  # pages being built and loaded
        self._switching = False
        self.tabs = pn.Tabs(
            *zip(self.page_names, self._holders, strict=True),
            active=active,
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

    def start(self, linked: tuple[str, Any] | None = None) -> None:
        """Build and fill the first page: History's drill-down of ``linked`` (card, time)
        when the URL asked for it, else the active tab."""
        if linked is not None:
            self.open_history(*linked)
        else:
            self.show(self.tabs.active)

    def open_history(self, card: str, at) -> None:
        """Show the History drill-down of ``card`` around ``at`` (from an alert's detail)."""
        self._switching = True  # the drill-down replaces History's own first load
        try:
            self.tabs.active = HISTORY_TAB
        finally:
            self._switching = False
        self.show(HISTORY_TAB, lambda: self.history.show_card_at(card, at))

    def _on_tab(self, event) -> None:
        if not self._switching:
            self.show(event.new)
        if event.new == LIVE_TAB and LIVE_TAB in self._built:
            self.pull()  # the Live page catches up on what it missed while hidden

    def show(self, index: int, load: Callable[[], Awaitable[None]] | None = None) -> None:
        """Show page ``index`` with what it reads from the database (``load``: instead of
        the page's own loading). Pages that read the database load when shown, not for
        every session; a page shown for the first time is built and loaded first and put in
        its tab after (:meth:`_open`)."""
        if index not in self._built and index not in self._opening:
            self._opening.add(index)
            schedule(functools.partial(self._open, index, load))
            return
        if index not in self._built and load is None:
            return  # being opened: loaded once built
        for step in [load] if load is not None else self._loads(index):
            schedule(step)

    async def _open(self, index: int, load: Callable[[], Awaitable[None]] | None) -> None:
        """Build page ``index``, load it, then replace its placeholder: the browser gets the
        page with its data. (A widget changed right after it was sent can reach BokehJS
        before its view is drawn: a Select then fails with "Cannot read properties of
        undefined (reading 'removeAttribute')".)"""
        try:
            view = self._create(index)
            if view is None:
                return
            if index == LIVE_TAB:
                self.pull()  # the hub's window, before the page is sent
            for step in [load] if load is not None else self._loads(index):
                try:
                    await step()
                except Exception:  # the page is shown all the same, with what it has
                    log.exception("loading the %s page failed", self.page_names[index])
            self._attach(index, view)
        finally:
            self._opening.discard(index)

    def _loads(self, index: int) -> list[Callable[[], Awaitable[Any]]]:
        if index == ALERTS_TAB and self.alerts is not None:
            return [self.alerts.refresh]
        if index == HISTORY_TAB and self.history is not None and not self.history.loaded:
            return [self.history.load_preset]
        if index == EDITOR_TAB and self.editor is not None and not self.editor.loaded:
            # rule health reads on its Refresh (days of scans)
            assert self.precision is not None and self.shadow is not None
            return [self.editor.load, self.precision.load, self.shadow.load]
        if index == LISTS_TAB and self.lists is not None:
            return [self.lists.load]
        if index == AUDIT_TAB and self.audit is not None:
            return [self.audit.load]
        return []

    def build(self, index: int) -> bool:
        """Build page ``index`` and put it in its tab now, without loading its data (once;
        :meth:`show` builds and loads); False when it could not be built (the tab then
        says so; the error is logged)."""
        if index in self._built:
            return True
        view = self._create(index)
        if view is None:
            return False
        self._attach(index, view)
        return True

    def _create(self, index: int) -> pn.viewable.Viewable | None:
        started = time.perf_counter()
        try:
            view = self._make(index)
        except Exception as exc:  # one broken page must not take the session down
            log.exception("the %s page could not be built", self.page_names[index])
            self._holders[index].objects = [
                safe.banner(safe.html("<b>{} cannot be shown</b>: {}", self.page_names[index], exc))
            ]
            return None
        log.info("%s page built in %.3f s", self.page_names[index], time.perf_counter() - started)
        return view

    def _attach(self, index: int, view: pn.viewable.Viewable) -> None:
        self._holders[index].objects = [view]
        self._built.add(index)

    def _make(self, index: int) -> pn.viewable.Viewable:
        dsn, identity = self.dsn, self.identity
        if index == LIVE_TAB:
            self.live = LiveView(notify=self.toast_area.show)
            self.live_seq = 0  # the next pull brings the hub's whole window to the new view
            return self.live
        if index == ALERTS_TAB:
            self.alerts = CasesPage(dsn, identity)
            self.alerts.case.alerts.evidence.on_history = self.open_history
            return _contained(self.alerts.panel)
        if index == HISTORY_TAB:
            self.history = HistoryView(dsn)
            return self.history
        if index == EDITOR_TAB:
            # The editor reads as the dashboard; it publishes as the publisher's role.
            publisher = self.publisher_dsn or current_publisher_dsn(dsn)
            self.editor = EditorView(
                dsn,
                self.settings.rules_dir,
                identity=identity,
                publisher_dsn=publisher,
                apply_enabled=self.settings.editor_apply,
            )
            self.precision = RulePrecisionView(dsn)
            self.shadow = ShadowView(dsn, Actions(identity, dsn, publisher))
            self.rule_health = RuleHealthView(dsn)
            return pn.Column(
                self.editor,
                self.precision,
                self.rule_health,
                self.shadow,
                sizing_mode="stretch_width",
            )
        if index == LISTS_TAB:
            self.lists = ListsView(dsn, identity)
            return self.lists
        self.audit = AuditView(dsn, identity)
        return self.audit

    def attach(self, doc: Any) -> None:
        """Pull when the hub wakes the session (``doc``: its served document)."""
        self._doc = doc
        self.hub.subscribe(self)

    def detach(self) -> None:
        self.hub.unsubscribe(self)
        self._doc = None

    def wake(self) -> None:
        """Called by the hub from the feed's thread: pull on the document's event loop soon.
        Coalesced: one wake-up waits at a time (``add_next_tick_callback`` is the one
        document method Bokeh allows from another thread)."""
        doc = self._doc
        if doc is None or self._wake_pending:
            return
        self._wake_pending = True
        doc.add_next_tick_callback(self._woken)

    def _woken(self) -> None:
        self._wake_pending = False  # before reading the hub: a later wake-up is not lost
        self.tick()

    def _tokens_now(self, now: float) -> float:
        rate = 1000.0 / REFRESH_MS  # updates per second, on average
        return min(BURST, self._tokens + (now - self._tokens_at) * rate)

    def tick(self) -> None:
        """A wake-up or the periodic tick: :meth:`pull` now, or when the rate allows the
        next update (:data:`REFRESH_MS` on average, :data:`BURST` at once)."""
        wait = (1.0 - self._tokens_now(time.monotonic())) * REFRESH_MS / 1000.0
        if wait > 0:  # updated lately: once more when the rate allows it
            if not self._deferred and self._doc is not None:
                self._deferred = True
                self._doc.add_timeout_callback(self._deferred_pull, 1000.0 * wait)
            return
        self._pull_in_document()

    def _deferred_pull(self) -> None:
        self._deferred = False
        self._pull_in_document()

    def _pull_in_document(self) -> None:
        with set_curdoc(self._doc):  # pn.io.hold() and the toasts find the session's document
            self.pull()

    def pull(self) -> None:
        """One update: everything new in the hub since the last one (the Live page: only
        while shown)."""
        try:
            delta = self.hub.delta(self.seq)
            now = time.monotonic()
            live = self.live
            shown = live is not None and self.tabs.active == LIVE_TAB
            if delta.seq == self.seq and not (shown and self.live_seq != delta.seq):
                if shown:
                    live.flush_tables()  # rows held back by the table throttle
                    if now - self._last_status >= STATUS_EVERY_S:  # rates decay, status stalls
                        live.update_status(delta)
                        self._last_status = now
                return
            self._last_status = now
            self._tokens, self._tokens_at = max(self._tokens_now(now) - 1.0, 0.0), now
            seen, live_seen = self.seq, self.live_seq
            self.seq = delta.seq  # a failed delta is never re-applied
            with pn.io.hold():
                if shown:
                    caught_up = live_seen == seen
                    view = delta if caught_up else self.hub.delta(live_seen)
                    self.live_seq = view.seq
                    live.update(view, first=live_seen == 0, toasts=caught_up)
                    if not caught_up and live_seen:
                        live.toasts.add(delta.alerts)  # only the new ones are toasted
                elif live is not None:
                    live.toasts.add(delta.alerts)  # a hidden Live page still toasts
                if self.alerts is not None and self.tabs.active == ALERTS_TAB:
                    self.alerts.note_open_alerts(delta.kpis.open_alerts)  # hidden: on show
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
    given. Rule publication uses ``publisher_dsn`` (default: the reader's ``dsn``).

    Served, the page is sent with the header, the tab bar and a "Loading…" placeholder, and
    the first page is built once the browser has shown them (``pn.state.onload``): the
    analyst sees the page at once instead of a blank one while every page is built.
    ``?card=...&at=...`` opens History's drill-down instead of Live.
    """
    # Per session, not at import: called inside a served document, Panel keeps these
    # settings for that document only, so an import-time call gave the first session after
    # a server start its toasts (notifications) and every later one none.
    pn.extension("tabulator", "codeeditor", notifications=True, sizing_mode="stretch_width")
    hub = hub or start_hub(dsn)
    linked = parse_history_query(_query_args())
    session = Session(
        hub,
        dsn or current_dsn(),
        identity=identity,
        publisher_dsn=publisher_dsn,
        active=HISTORY_TAB if linked is not None else LIVE_TAB,
    )
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
        retrieve_closed_socket_errors()
        pn.state.curdoc.template = _page_template()
        session.attach(pn.state.curdoc)
        callback = pn.state.add_periodic_callback(session.tick, period=int(1000 * STATUS_EVERY_S))

        def destroyed(_ctx) -> None:
            callback.stop()
            session.detach()

        pn.state.on_session_destroyed(destroyed)
        pn.state.onload(functools.partial(session.start, linked))
    else:
        session.start(linked)
    session.view = pn.Column(
        header, session.banner, session.tabs, session.toast_area, sizing_mode="stretch_width"
    )
    return session


def loading_placeholder(name: str) -> pn.Row:
    """What a tab shows until its page is built: a spinner and "Loading <name>…"."""
    return pn.Row(
        pn.indicators.LoadingSpinner(value=True, size=24, margin=(12, 8)),
        safe.pane(safe.html("<p>Loading {}…</p>", name)),
        css_classes=["tab-loading"],
        sizing_mode="stretch_width",
    )


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
