"""Database URLs in messages and logs: the password is never shown.

:func:`public_url` gives the URL a notebook or ``panel serve`` can use, without its password.

A DSN reaches a message in two ways: we print it (use :func:`redact`, or
:func:`~workbench.storage.connection.describe` for ``host:port/db``), or the driver echoes a
piece of it — libpq quotes the offending token of a DSN it cannot parse, and that token can be
the password (``invalid percent-encoded token: "s3cr%et"``) or the whole URL. So the text of
every driver error about a connection goes through :func:`scrub` with the DSN it was about.

The password is found without trusting the DSN to be valid (it is the invalid ones that get
echoed): the URL's user-info (up to the first and up to the last ``@``, both as written and
percent-decoded), a ``password=`` query parameter and a ``password=`` keyword (quoted or
not), plus whatever libpq itself parses. Every candidate is replaced by ``***``; replacing a
little too much only costs a less readable message.

>>> redact("postgresql://fraud:s3cret@db:5432/wb?sslmode=require")
'postgresql://fraud:***@db:5432/wb?sslmode=require'
>>> redact("host=db user=fraud password='s3 cret' dbname=wb")
'host=db user=fraud password=*** dbname=wb'
>>> scrub('invalid percent-encoded token: "s3cr%zzet"', "postgresql://u:s3cr%zzet@db/wb")
'invalid percent-encoded token: "***"'
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlencode

import psycopg
from psycopg import conninfo

MASK = "***"

_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://(?P<rest>.*)$", re.DOTALL)
_QUERY = re.compile(r"[?&]password=(?P<value>[^&#]*)", re.IGNORECASE)
_KEYWORD = re.compile(
    r"(?:^|\s)password\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE | re.DOTALL
)


def secrets_of(dsn: str | None) -> list[str]:
    """Every form in which ``dsn``'s password may appear in a text, longest first."""
    if not dsn:
        return []
    found: set[str] = set()
    url = _URL.match(dsn)
    if url:
        rest = url["rest"]
        for at in {rest.find("@"), _user_info_end(rest)} - {-1}:
            user_info = rest[:at]
            if ":" in user_info:
                found.add(user_info.split(":", 1)[1])
        found.update(m["value"] for m in _QUERY.finditer(rest))
    else:
        for m in _KEYWORD.finditer(dsn):
            value = m["value"]
            found.add(value)
            if value.startswith("'"):
                found.add(re.sub(r"\\(.)", r"\1", value.strip("'")))
    found.update({unquote(s) for s in found})
    parsed = _parsed_password(dsn)
    if parsed:
        found.add(parsed)
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, dsn: str | None) -> str:
    """``text`` with every appearance of ``dsn``'s password replaced by ``***``."""
    for secret in secrets_of(dsn):
        text = text.replace(secret, MASK)
    return text


def redact(dsn: str) -> str:
    """``dsn`` as it may be shown: the same text, its password replaced by ``***``.

    Replaced where it stands (not wherever its text occurs, as :func:`scrub` does), so a
    password ``p`` does not turn ``postgresql`` into ``***ostgresql``.
    """
    url = _URL.match(dsn)
    if not url:
        return _KEYWORD.sub(lambda m: m[0][: m.start("value") - m.start()] + MASK, dsn)
    head, rest = dsn[: url.start("rest")], url["rest"]
    at = _user_info_end(rest)
    if at != -1 and ":" in rest[:at]:
        rest = rest[: rest.index(":") + 1] + MASK + rest[at:]
    return head + _QUERY.sub(lambda m: m[0][: m.start("value") - m.start()] + MASK, rest)


def public_url(dsn: str) -> str:
    """``dsn`` as a ``postgresql://`` URL a client can use, without its password.

    >>> public_url("host=db port=5433 user=fraud password=s3cret dbname=wb sslmode=require")
    'postgresql://fraud@db:5433/wb?sslmode=require'
    """
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid DSN>"
    params.pop("password", None)
    user = params.pop("user", None)
    host, port = params.pop("host", None), params.pop("port", None)
    dbname = params.pop("dbname", None)
    where = quote(str(host), safe="") if host else ""
    url = "postgresql://" + (quote(str(user), safe="") + "@" if user else "") + where
    url += f":{port}" if port else ""
    url += "/" + quote(str(dbname), safe="") if dbname else ""
    return url + ("?" + urlencode(params, safe="/") if params else "")


def reveals(text: str, dsn: str | None) -> bool:
    """True when ``text`` holds ``dsn``'s password in some form."""
    return scrub(text, dsn) != text


def _user_info_end(rest: str) -> int:
    """Index of the ``@`` that ends a URL's user-info in ``rest`` (after ``scheme://``): the
    last one before the path or query (a password may hold an unencoded ``@``), else the
    first one (it may hold an unencoded ``/``); -1 without user-info."""
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    at = rest.rfind("@", 0, cut)
    return at if at != -1 else rest.find("@")


def _parsed_password(dsn: str) -> str | None:
    try:
        return conninfo.conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except Exception:  # invalid: the patterns above found what can be found
        return None
