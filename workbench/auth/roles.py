"""Roles and actions: which role each state-changing action needs, checked on the server.

Four roles, each including everything the one before it may do::

    viewer       reads every page; changes nothing
    analyst      + claims, dispositions, notes, lists, snoozes
    rule-author  + rule drafts (validate, what-if)
    admin        + publish and roll back rule sets, manage users, read the audit trail

Every callback that changes state calls :func:`check` with the session's
:class:`Identity` *before* it acts — the button being hidden or disabled in the browser is
a convenience, never the control. A refusal raises :class:`AccessDenied`, which the caller
records in the audit trail.

>>> alice = Identity("alice", Role.ANALYST)
>>> allowed(alice.role, Action.DISPOSE), allowed(alice.role, Action.PUBLISH_RULES)
(True, False)
>>> check(alice, Action.PUBLISH_RULES)
Traceback (most recent call last):
...
workbench.auth.roles.AccessDenied: alice (analyst) may not publish rules: it needs the admin role
>>> Role.parse("Rule-Author")
<Role.RULE_AUTHOR: 3>
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from workbench.errors import ConfigError, WorkbenchError

__all__ = ["AccessDenied", "Action", "Identity", "Role", "allowed", "check"]


class Role(enum.IntEnum):
    """The four roles, in order: a role may do everything the roles below it may."""

    VIEWER = 1
    ANALYST = 2
    RULE_AUTHOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        """As written in files, settings and the audit trail: ``rule-author``."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """A role from its label (any case, ``-`` or ``_``); a ConfigError naming the four."""
        if isinstance(value, Role):
            return value
        key = str(value).strip().upper().replace("-", "_")
        try:
            return cls[key]
        except KeyError:
            choices = ", ".join(r.label for r in cls)
            raise ConfigError(f"unknown role {str(value)[:40]!r}: use one of {choices}") from None


class Action(enum.Enum):
    """Everything that changes state or reads the audit trail: (label, the role it needs)."""

    CLAIM = ("claim alerts", Role.ANALYST)
    DISPOSE = ("dispose of alerts", Role.ANALYST)
    EDIT_LISTS = ("edit lists", Role.ANALYST)
    SNOOZE = ("snooze rules", Role.ANALYST)
    IMPORT_LABELS = ("import labels", Role.ANALYST)
    DRAFT_RULES = ("draft rules", Role.RULE_AUTHOR)
    WHAT_IF = ("run what-if", Role.RULE_AUTHOR)
    PUBLISH_RULES = ("publish rules", Role.ADMIN)
    ROLLBACK_RULES = ("roll back rules", Role.ADMIN)
    PROMOTE_SHADOW = ("promote the shadow rule set", Role.RULE_AUTHOR)
    SHADOW_ROLLOUT = ("roll out the shadow rule set to a share of cards", Role.RULE_AUTHOR)
    MANAGE_USERS = ("manage users", Role.ADMIN)
    READ_AUDIT = ("read the audit trail", Role.ADMIN)
    # Cases (the queue): an analyst works cases; giving one to someone else is an admin's.
    CASE_CLAIM = ("claim cases", Role.ANALYST)
    CASE_RELEASE = ("release cases", Role.ANALYST)
    CASE_ASSIGN = ("assign cases", Role.ANALYST)  # to oneself; others: CASE_ASSIGN_OTHERS
    CASE_ASSIGN_OTHERS = ("assign or release other analysts' cases", Role.ADMIN)
    CASE_STATUS = ("change case status", Role.ANALYST)
    CASE_NOTE = ("add case notes", Role.ANALYST)
    CASE_CLOSE = ("close cases", Role.ANALYST)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def needs(self) -> Role:
        return self.value[1]

    @property
    def code(self) -> str:
        """As recorded in the audit trail: ``rules.publish``-style dotted lower case."""
        return _CODES[self]


_CODES = {
    Action.CLAIM: "alert.claim",
    Action.DISPOSE: "alert.dispose",
    Action.EDIT_LISTS: "list.edit",
    Action.SNOOZE: "rule.snooze",
    Action.IMPORT_LABELS: "labels.import",
    Action.DRAFT_RULES: "rules.draft",
    Action.WHAT_IF: "rules.what_if",
    Action.PUBLISH_RULES: "rules.publish",
    Action.ROLLBACK_RULES: "rules.rollback",
    Action.PROMOTE_SHADOW: "rules.promote_shadow",
    Action.SHADOW_ROLLOUT: "rules.shadow_rollout",
    Action.MANAGE_USERS: "user.manage",
    Action.READ_AUDIT: "audit.read",
    Action.CASE_CLAIM: "case.claim",
    Action.CASE_RELEASE: "case.release",
    Action.CASE_ASSIGN: "case.assign",
    Action.CASE_ASSIGN_OTHERS: "case.assign_others",
    Action.CASE_STATUS: "case.status",
    Action.CASE_NOTE: "case.note",
    Action.CASE_CLOSE: "case.close",
}


@dataclass(frozen=True)
class Identity:
    """Who acts: the login name, its role, how they logged in and from which address.

    ``provider`` is ``basic`` (the credentials file), ``oauth`` (an identity provider),
    ``local`` (no login configured: the dashboard is bound to 127.0.0.1 and every session is
    the machine's user), ``cli`` (a command run on this machine) or ``pipeline``.
    """

    user: str
    role: Role
    provider: str = "local"
    address: str | None = None

    def __str__(self) -> str:
        return f"{self.user} ({self.role.label})"


class AccessDenied(WorkbenchError):
    """An identity tried an action its role does not allow (raised by :func:`check`)."""

    def __init__(self, identity: Identity, action: Action) -> None:
        super().__init__(
            f"{identity} may not {action.label}: it needs the {action.needs.label} role"
        )
        self.identity = identity
        self.action = action


def allowed(role: Role, action: Action) -> bool:
    """Whether ``role`` may perform ``action``."""
    return role >= action.needs


def check(identity: Identity, action: Action) -> None:
    """Raise :class:`AccessDenied` unless ``identity``'s role allows ``action``."""
    if not allowed(identity.role, action):
        raise AccessDenied(identity, action)
