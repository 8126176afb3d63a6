"""Who may do what: roles, identities and the server-side check of every action.

- :mod:`~workbench.auth.roles`  the four roles, the actions and which role each needs,
  :class:`~workbench.auth.roles.Identity` (who acts, with which role, from where) and
  :func:`~workbench.auth.roles.check`.

Importing this package starts nothing and needs no web framework: the dashboard, the CLI and
notebooks share the same check.
"""
