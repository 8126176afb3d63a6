"""Every setting of Fraud Workbench, declared once: name, type, default and help.

Settings are read once, at startup, from the environment (``WORKBENCH_<NAME>``) and from CLI
overrides, validated here, and passed down as a :class:`Settings` object. Nothing else in the
package reads ``os.environ``. The README's settings table is checked against this list.

>>> s = Settings.load({"WORKBENCH_RATE": "250"})
>>> s.rate, s.seed
(250.0, 42)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workbench.durations import parse_duration
from workbench.errors import ConfigError


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return value


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    parse.__name__ = kind.__name__
    return parse


@dataclass(frozen=True)
class Setting:
    """One declared setting. ``parse`` turns the environment's text into the typed value."""

    name: str
    type: str
    default: Any
    help: str
    parse: Callable[[str], Any]

    @property
    def env(self) -> str:
        return "WORKBENCH_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("rules_dir", "path", "rules", "Directory of YAML rule files.", str),
    Setting("seed", "int", 42, "Random seed of the simulator.", int),
    Setting(
        "rate", "float", 1000.0, "Target source rate in transactions per second.", _positive(float)
    ),
    Setting(
        "batch_rows",
        "int",
        1000,
        "Transactions per batch read from a source. Left unset, a replay of a file picks its "
        "own (see Sources: up to 16384 rows unpaced, about 0.1 s of the rate when paced).",
        _positive(int),
    ),
    Setting(
        "ts_min",
        "timestamp",
        "1970-01-01T00:00:00Z",
        "Earliest accepted transaction time (ISO 8601, UTC); an earlier ts is a dead letter.",
        lambda t: _timestamp(t),
    ),
    Setting(
        "ts_max",
        "timestamp",
        "2100-01-01T00:00:00Z",
        "Latest accepted transaction time (ISO 8601, UTC); a later ts is a dead letter, so "
        "no partition is created for an absurd year.",
        lambda t: _timestamp(t),
    ),
    Setting(
        "replay_max_line_bytes",
        "int",
        65536,
        "Longest CSV line (record) a replay accepts, in bytes; a longer one is a dead letter "
        "and reading goes on at the next line.",
        _positive(int),
    ),
    Setting(
        "sim_speedup",
        "float",
        1440.0,
        "Simulated seconds that pass per wall-clock second in the simulator (1440: a "
        "simulated day per minute).",
        _positive(float),
    ),
    Setting(
        "sim_start", "str", "2026-01-01T00:00:00Z", "Simulated start time (ISO 8601, UTC).", str
    ),
    Setting("sim_customers", "int", 20000, "Number of simulated customers.", _positive(int)),
    Setting(
        "sim_terminals", "int", 4000, "Number of simulated terminals (merchants).", _positive(int)
    ),
    Setting(
        "fraud_large_amount",
        "float",
        0.002,
        "Share of transactions replaced by a fraudulent very large amount.",
        _rate,
    ),
    Setting(
        "fraud_compromised_terminal",
        "float",
        0.0005,
        "Chance per terminal per simulated day that it is compromised: all its "
        "transactions for the next 28 days are fraud.",
        _rate,
    ),
    Setting(
        "fraud_leaked_card",
        "float",
        0.0005,
        "Chance per card per simulated day that it leaks: for 14 days a third of its "
        "transactions are fraud with the amount multiplied by 5.",
        _rate,
    ),
    Setting(
        "fraud_card_testing",
        "float",
        0.0005,
        "Card-testing bursts started per transaction (each burst is 5-15 tiny amounts at "
        "new merchants within minutes).",
        _rate,
    ),
    Setting(
        "fraud_impossible_travel",
        "float",
        0.001,
        "Share of transactions that are fraud far away from the card's previous "
        "transaction, too soon to have travelled there.",
        _rate,
    ),
    Setting(
        "fraud_account_takeover",
        "float",
        0.001,
        "Share of transactions that are account takeovers: new device, new country, high amount.",
        _rate,
    ),
    Setting(
        "allowed_lateness",
        "duration",
        "1h",
        "How late (event time) a transaction may arrive and still see a complete feature "
        "window; window state is kept this much past the longest window.",
        parse_duration,
    ),
    Setting(
        "feature_threads",
        "int",
        1,
        "Threads a worker computes one batch's feature groups on (one group per entity "
        "column: card, customer, terminal, ...); more than 1 pays only with cores to spare "
        "beside the writer and the database.",
        _positive(int),
    ),
    Setting(
        "case_sla",
        "duration",
        "24h",
        "Time an analyst has to close a new case (wall clock from its opening; e.g. 4h, "
        "1d): its due time in the case queue.",
        _positive(parse_duration),
    ),
    Setting(
        "database_url",
        "str",
        "",
        "PostgreSQL URL (postgresql://user@host:port/db). When empty and no libpq PG* "
        "variable is set, an embedded PostgreSQL is started under .workbench/.",
        str,
    ),
    Setting(
        "pipeline_database_url",
        "str",
        "",
        "PostgreSQL URL the pipeline worker (`workbench run`) connects with: a least-privilege "
        "role (`workbench db roles`); it never migrates. Empty: the database URL. `workbench "
        "up` sets it for its worker.",
        str,
    ),
    Setting(
        "dashboard_database_url",
        "str",
        "",
        "PostgreSQL URL the dashboard connects with (read-only but for alert dispositions and "
        "the audit trail). Empty: the database URL, or the role `workbench up` makes.",
        str,
    ),
    Setting(
        "publisher_database_url",
        "str",
        "",
        "PostgreSQL URL the dashboard's rule editor publishes and rolls back rule sets with. "
        "Empty: the database URL, or the role `workbench up` makes.",
        str,
    ),
    Setting(
        "retention_days",
        "int",
        0,
        "Drop daily transaction partitions older than this many days (0 keeps all).",
        lambda t: _non_negative(int(t)),
    ),
    Setting(
        "worker_id",
        "str",
        "",
        "Name of this pipeline worker (default: host:pid); unique among the workers of a Kafka"
        " consumer group (a worker leaves its own batches out of the rows it follows).",
        str,
    ),
    Setting(
        "dashboard_port",
        "int",
        5006,
        "Port of the dashboard served by `workbench up` (0 picks a free port).",
        lambda t: _port(int(t)),
    ),
    Setting(
        "dashboard_address",
        "str",
        "127.0.0.1",
        "Address the dashboard of `workbench up` listens on (0.0.0.0: every interface). Any "
        "address but a loopback one needs a login (users in the credentials file, or OAuth).",
        str,
    ),
    Setting(
        "auth_users_file",
        "path",
        ".workbench/users.json",
        "Credentials file of the dashboard's login (argon2 hashes, mode 0600), managed by "
        "`workbench users`; the login is on as soon as it holds a user.",
        str,
    ),
    Setting(
        "local_role",
        "str",
        "admin",
        "Role of every session when no login is configured (the dashboard then listens on "
        "loopback only): viewer, analyst, rule-author or admin.",
        lambda t: _choice(t.strip().lower(), ROLE_LABELS),
    ),
    Setting(
        "auth_oauth_provider",
        "str",
        "",
        "Panel OAuth provider for the login instead of the credentials file (generic, "
        "github, google, azure, okta, auth0, gitlab...); empty: no OAuth.",
        str,
    ),
    Setting("auth_oauth_key", "str", "", "OAuth client id.", str),
    Setting("auth_oauth_secret", "str", "", "OAuth client secret (never printed).", str),
    Setting(
        "auth_oauth_redirect_uri",
        "str",
        "",
        "OAuth redirect URI registered with the provider (empty: the dashboard's URL).",
        str,
    ),
    Setting(
        "auth_oauth_extra_params",
        "str",
        "",
        'Provider parameters as a JSON object, e.g. {"TOKEN_URL": "...", "AUTHORIZE_URL": '
        '"..."} for the generic provider.',
        lambda t: _json_object(t),
    ),
    Setting(
        "auth_oauth_roles",
        "str",
        "",
        "Roles of OAuth users: comma-separated USER=ROLE (e.g. "
        "alice@x.org=admin,bob@x.org=analyst).",
        str,
    ),
    Setting(
        "auth_oauth_default_role",
        "str",
        "viewer",
        "Role of an OAuth user not named in WORKBENCH_AUTH_OAUTH_ROLES.",
        lambda t: _choice(t.strip().lower(), ROLE_LABELS),
    ),
    Setting(
        "editor_apply",
        "bool",
        True,
        "Whether the dashboard's rule editor may write rule files (Apply) and roll back; "
        "false leaves Validate and What-if only. Apply and rollback also need the admin role; "
        "changes are recorded under the login's name.",
        _bool,
    ),
    Setting(
        "display_timezone",
        "str",
        "UTC",
        "IANA time zone the dashboard shows event times and wall-clock times in (e.g. "
        "Europe/Paris), and reads its date inputs in; every time column, axis and input "
        "names it. Storage stays UTC.",
        lambda t: _time_zone(t),
    ),
    Setting(
        "numba_cache_dir",
        "path",
        "",
        "Directory of the compiled feature kernels (`workbench warmup` fills it; a worker "
        "loads them from there instead of compiling for seconds). Empty: numba's choice "
        "(NUMBA_CACHE_DIR, else next to the sources when writable, else the user's cache "
        "directory). It must be writable, even to be read from.",
        str,
    ),
    Setting(
        "log_level",
        "str",
        "INFO",
        "Log level: DEBUG, INFO, WARNING or ERROR.",
        lambda t: _choice(t.upper(), ("DEBUG", "INFO", "WARNING", "ERROR")),
    ),
)


# The labels of workbench.auth.roles.Role (a lower layer cannot import it; a unit test keeps
# both equal).
ROLE_LABELS = ("viewer", "analyst", "rule-author", "admin")


def _json_object(text: str) -> str:
    """Checked to be a JSON object (or empty), kept as text for the auth layer to read."""
    if text.strip() and not isinstance(json.loads(text), dict):
        raise ValueError('must be a JSON object, e.g. {"KEY": "value"}')
    return text.strip()


def _port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port number (0-65535), got {value}")
    return value


def _timestamp(text: str) -> str:
    # Validated here, kept as text: the kernel's settings import no pandas.
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _time_zone(text: str) -> str:
    """An IANA time zone name known to this machine (kept as text: the dashboard builds the
    ``ZoneInfo``)."""
    name = text.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"not a time zone: {name!r} (use an IANA name such as UTC or Europe/Paris)"
        ) from None
    return name


def _non_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


LIBPQ_VARIABLES = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSERVICE",
    "PGPASSFILE",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
)
"""The standard libpq variables that select a database (read with the settings)."""


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
    return value


_BY_NAME = {s.name: s for s in SETTINGS}


class Settings:
    """Validated values of every declared setting, read-only by attribute."""

    __slots__ = ("_given", "_libpq", "_values")

    def __init__(
        self,
        values: Mapping[str, Any],
        libpq: Mapping[str, str] | None = None,
        given: frozenset[str] = frozenset(),
    ) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_libpq", dict(libpq or {}))
        object.__setattr__(self, "_given", frozenset(given))

    def is_set(self, name: str) -> bool:
        """True when ``name`` was given (environment variable, CLI option, :meth:`replace`)
        rather than left at its default, so a caller can choose a better value for the
        default case only (a replay picks its batch size from the input).

        >>> Settings.load({}).is_set("batch_rows"), Settings.load({}, batch_rows=500).is_set(
        ...     "batch_rows")
        (False, True)
        """
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting: {name}")
        return name in self._given

    @property
    def libpq(self) -> dict[str, str]:
        """The libpq ``PG*`` variables that were set when the settings were loaded."""
        return dict(self._libpq)

    @property
    def database_configured(self) -> bool:
        """True when a database was configured (URL or libpq variables)."""
        return bool(self.database_url or self._libpq)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``WORKBENCH_*`` variables, then explicit (CLI) overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        given: set[str] = set()
        for setting in SETTINGS:
            raw = env.get(setting.env)
            source = setting.env
            if setting.name in overrides and overrides[setting.name] is not None:
                raw, source = overrides[setting.name], f"--{setting.name.replace('_', '-')}"
            if raw is None:
                raw, source = setting.default, "default"
            else:
                given.add(setting.name)
            values[setting.name] = _parse(setting, raw, source)
        unknown = set(overrides) - set(_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        libpq = {k: env[k] for k in LIBPQ_VARIABLES if env.get(k)}
        return cls(values, libpq, frozenset(given))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are read-only")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (validated like everything else)."""
        values = dict(self._values)
        for name, raw in changes.items():
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting: {name}")
            values[name] = _parse(_BY_NAME[name], raw, name)
        return Settings(values, self._libpq, self._given | set(changes))

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _parse(setting: Setting, raw: Any, source: str) -> Any:
    if not isinstance(raw, str):
        raw = str(raw)
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        reason = (
            str(exc) if "must" in str(exc) or "not a" in str(exc) else f"expected {setting.type}"
        )
        where = setting.env if source == setting.env else f"{setting.env} ({source})"
        raise ConfigError(f"invalid value {raw!r} for {where}: {reason}") from None


def markdown_table() -> str:
    """The README's settings table, rendered from the declarations (a test keeps them equal)."""
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        lines.append(f"| `{s.env}` | {s.type} | `{s.default}` | {s.help} |")
    return "\n".join(lines)
