"""Column mappings: how the columns of a foreign file become the transaction schema.

A :class:`ColumnMapping` names, for each schema column, the file column that holds it
(``columns``), or a constant for a column the file lacks (``defaults``), and how the file
writes time (``ts_format``, ``ts_origin``). A schema column that is neither mapped nor
defaulted is read from the file column of the same name when there is one, else it gets the
schema's default (see :mod:`workbench.schema`). Mappings come from YAML files (a path, or a
built-in name such as ``handbook``) or from CLI ``--map`` options, and merge left to right.

>>> m = ColumnMapping.from_options(["ts=TX_DATETIME", "amount=TX_AMOUNT", "currency:=USD"])
>>> m.columns, m.defaults
({'ts': 'TX_DATETIME', 'amount': 'TX_AMOUNT'}, {'currency': 'USD'})
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from workbench import schema
from workbench.errors import SourceError

BUILTIN_DIR = Path(__file__).with_name("mappings")
_KEYS = ("columns", "defaults", "ts_format", "ts_origin", "multiline")
_EPOCH_UNITS = {"epoch_s": "s", "epoch_ms": "ms"}


@dataclass(frozen=True)
class ColumnMapping:
    """Schema column -> file column, constants for absent columns, and the time format.

    Validated when constructed: every key must be a schema column, and a column is either
    mapped or defaulted, not both.
    """

    columns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, object] = field(default_factory=dict)
    ts_format: str | None = None
    """strftime format of ``ts``; ``None`` parses ISO 8601 / epochs automatically;
    ``epoch_s`` or ``epoch_ms`` for numbers since 1970-01-01 UTC."""
    ts_origin: str | None = None
    """When set, ``ts`` holds seconds since this instant (e.g. ``TX_TIME_SECONDS``)."""
    multiline: bool = False
    """Whether a quoted CSV field may span lines. Off by default: then a line with an
    unbalanced quote is one dead letter, instead of swallowing the lines after it."""

    def __post_init__(self) -> None:
        for what, keys in (("column", self.columns), ("default", self.defaults)):
            for key in keys:
                _check_schema_name(key, what)
        for key, value in self.columns.items():
            if not isinstance(value, str) or not value:
                raise SourceError(f"mapping of '{key}' must name a file column, got {value!r}")
        both = sorted(set(self.columns) & set(self.defaults))
        if both:
            raise SourceError(f"column(s) both mapped and defaulted: {', '.join(both)}")
        if self.ts_format is not None and not isinstance(self.ts_format, str):
            raise SourceError(f"ts_format must be text, got {self.ts_format!r}")
        if self.ts_origin is not None:
            try:
                pd.Timestamp(self.ts_origin)
            except (TypeError, ValueError):
                raise SourceError(f"ts_origin is not a timestamp: {self.ts_origin!r}") from None
            if self.ts_format is not None:
                raise SourceError("ts_format and ts_origin cannot both be set")
        if not isinstance(self.multiline, bool):
            raise SourceError(f"multiline must be true or false, got {self.multiline!r}")

    @classmethod
    def from_yaml(cls, path_or_name: str | Path) -> ColumnMapping:
        """A mapping from a YAML file, or a built-in one by name (``handbook``)."""
        path = Path(path_or_name)
        builtin = BUILTIN_DIR / f"{path_or_name}.yaml"
        if not path.suffix and path.name == str(path_or_name) and builtin.is_file():
            path = builtin
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourceError(
                f"cannot read mapping {path_or_name!s}: {exc.strerror or exc} "
                f"(built-in mappings: {', '.join(builtin_names())})"
            ) from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f":{where.line + 1}" if where is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise SourceError(f"mapping {path}{line}: {problem}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SourceError(f"mapping {path}: expected a mapping with keys {', '.join(_KEYS)}")
        for key in data:
            if key not in _KEYS:
                raise SourceError(f"mapping {path}: unknown key '{key}'{_suggest(key, _KEYS)}")
        for key in ("columns", "defaults"):
            if not isinstance(data.get(key) or {}, dict):
                raise SourceError(f"mapping {path}: '{key}' must be a mapping")
        try:
            return cls(
                columns={str(k): v for k, v in (data.get("columns") or {}).items()},
                defaults={str(k): v for k, v in (data.get("defaults") or {}).items()},
                ts_format=data.get("ts_format"),
                ts_origin=_text(data.get("ts_origin")),
                multiline=data.get("multiline", False),
            )
        except SourceError as exc:
            raise SourceError(f"mapping {path}: {exc}") from None

    @classmethod
    def from_options(cls, options: Iterable[str]) -> ColumnMapping:
        """A mapping from CLI ``--map`` options.

        ``NAME=COLUMN`` maps a schema column to a file column, ``NAME:=VALUE`` sets a
        constant, ``ts_format=FORMAT`` and ``ts_origin=WHEN`` set the time options,
        ``multiline=true`` lets quoted fields span lines.
        """
        columns: dict[str, str] = {}
        defaults: dict[str, object] = {}
        extra: dict[str, object] = {}
        for option in options:
            key, sep, value = option.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise SourceError(f"--map {option!r}: expected NAME=COLUMN or NAME:=VALUE")
            if key.endswith(":"):
                defaults[key[:-1].strip()] = value
            elif key in ("ts_format", "ts_origin"):
                extra[key] = value
            elif key == "multiline":
                if value.lower() not in ("true", "false"):
                    raise SourceError(f"--map {option!r}: multiline is true or false")
                extra[key] = value.lower() == "true"
            else:
                columns[key] = value
        return cls(columns=columns, defaults=defaults, **extra)

    def merged(self, other: ColumnMapping) -> ColumnMapping:
        """This mapping overridden by ``other`` (a later --map beats the YAML file)."""
        columns = {k: v for k, v in self.columns.items() if k not in other.defaults}
        defaults = {k: v for k, v in self.defaults.items() if k not in other.columns}
        ts_format, ts_origin = self.ts_format, self.ts_origin
        if other.ts_format is not None or other.ts_origin is not None:
            ts_format, ts_origin = other.ts_format, other.ts_origin
        return ColumnMapping(
            {**columns, **other.columns},
            {**defaults, **other.defaults},
            ts_format,
            ts_origin,
            self.multiline or other.multiline,
        )

    def resolve(self, file_columns: Sequence[str]) -> dict[str, str]:
        """Schema column -> file column for this file; raises :class:`SourceError` when a
        mapped column is absent or a required column has no source."""
        present = set(file_columns)
        listed = ", ".join(map(str, file_columns)) or "(none)"
        for key, col in self.columns.items():
            if col not in present:
                raise SourceError(
                    f"mapped column '{col}' (for {key}) is not in the file; file columns: {listed}"
                )
        plan = {
            name: name for name in schema.NAMES if name in present and name not in self.defaults
        }
        plan.update(self.columns)
        unmapped = [n for n in schema.REQUIRED if n not in plan and n not in self.defaults]
        if unmapped:
            raise SourceError(
                f"no column for required {', '.join(unmapped)} "
                f"(map with --map NAME=COLUMN); file columns: {listed}"
            )
        return plan

    def apply(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The frame with schema column names, defaults added and ``ts`` parsed as declared;
        ready for :func:`workbench.schema.coerce`. Values are otherwise left raw so bad ones
        become dead letters there."""
        plan = self.resolve(list(raw.columns))
        out = {name: raw[col] for name, col in plan.items()}
        for name, value in self.defaults.items():
            out[name] = pd.Series([value] * len(raw), index=raw.index, dtype=object)
        if "ts" in out and (self.ts_format or self.ts_origin):
            out["ts"] = self._parse_ts(out["ts"])
        return pd.DataFrame(out, index=raw.index)

    def _parse_ts(self, values: pd.Series) -> pd.Series:
        if self.ts_origin is not None:
            secs = pd.to_numeric(values, errors="coerce")
            secs = secs.where(secs.abs() < 1e10)  # ±300 years: beyond is bad data, not overflow
            origin = pd.Timestamp(self.ts_origin)
            origin = origin.tz_localize("UTC") if origin.tz is None else origin
            parsed = origin + pd.to_timedelta(secs, unit="s", errors="coerce")
        elif self.ts_format in _EPOCH_UNITS:
            num = pd.to_numeric(values, errors="coerce")
            parsed = pd.to_datetime(
                num, unit=_EPOCH_UNITS[self.ts_format], utc=True, errors="coerce"
            )
        else:
            parsed = pd.to_datetime(values, format=self.ts_format, utc=True, errors="coerce")
        if not parsed.isna().any():
            return parsed
        # Keep the original text where the declared form failed: coerce tries it once more
        # and, failing, quotes it in the dead letter's reason.
        return parsed.astype(object).where(parsed.notna(), values)


def builtin_names() -> list[str]:
    """Names of the mappings that ship with the package."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _check_schema_name(name: str, what: str) -> None:
    if name not in schema.BY_NAME:
        hint = _suggest(name, schema.NAMES)
        raise SourceError(f"unknown schema {what} '{name}' in mapping{hint}")


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f" — did you mean '{close[0]}'?"
    return f" (known: {', '.join(known)})"


def _text(value: object) -> str | None:
    # YAML reads an unquoted 2018-04-01 as a date object; the mapping wants text.
    return None if value is None else str(value)
