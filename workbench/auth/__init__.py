"""Who may do what: roles, identities and the server-side check of every action.

- :mod:`~workbench.auth.roles`  the four roles, the actions and which role each needs,
  :class:`~workbench.auth.roles.Identity` (who acts, with which role, from where) and
  :func:`~workbench.auth.roles.check`;
- :mod:`~workbench.auth.users`  the credentials file of the dashboard's login (argon2 hashes);
- :mod:`~workbench.auth.login_config`  which login is on (OAuth, credentials file, none) and
  the refusal of a non-loopback address without one;
- :mod:`~workbench.auth.private`  files only this OS user may read (atomic, mode 0600) and
  the persistent cookie secret.

Importing this package starts nothing and needs no web framework: the dashboard, the CLI and
notebooks share the same check.
"""
