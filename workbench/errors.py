"""The exception tree of Fraud Workbench.

::

    WorkbenchError                 root: every error we raise on purpose
     ├── ConfigError               a setting has a bad value, a file or option is missing
     ├── SourceError               a source cannot be opened or its mapping is wrong
     ├── RuleError                 one problem in a rule file: file, line, column, rule id
     │    └── RuleSetError         several RuleErrors found in one load
     └── StorageError              a statement failed or the database cannot be used
          └── DatabaseUnavailable  the server cannot be reached or dropped the connection:
                                   trying again later may succeed

Users meet these in three places only: the CLI prints ``str(error)`` on one line and exits 1,
the dashboard shows it in a banner, the log keeps the traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class WorkbenchError(Exception):
    """Root of every error Fraud Workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A setting has an invalid value, or required configuration is missing."""


class SourceError(WorkbenchError):
    """A transaction source cannot be opened or configured."""


class StorageError(WorkbenchError):
    """The database is unreachable or a statement failed."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or dropped the connection; a retry may succeed."""


class RuleError(WorkbenchError):
    """One located problem in a rule file.

    >>> str(RuleError("unknown field 'amout'", file="rules/default.yaml", line=12, col=11,
    ...               rule_id="big_amount", suggestion="amount"))
    "unknown field 'amout' in rule 'big_amount' (rules/default.yaml:12:11) — did you mean 'amount'?"
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        rule_id: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.rule_id = rule_id
        self.suggestion = suggestion
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``file:line:col`` as far as it is known."""
        parts = [self.file or "<rules>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def located(self, **where: object) -> RuleError:
        """A copy with the missing location fields filled in from ``where``."""
        fields = {k: getattr(self, k) for k in ("file", "line", "col", "rule_id", "suggestion")}
        for key, value in where.items():
            if fields.get(key) is None:
                fields[key] = value
        return RuleError(self.message, **fields)  # type: ignore[arg-type]

    def __str__(self) -> str:
        text = self.message
        if self.rule_id:
            text += f" in rule '{self.rule_id}'"
        text += f" ({self.location})"
        if self.suggestion:
            text += f" — did you mean '{self.suggestion}'?"
        return text

    def __reduce__(self):  # keep picklable across worker processes
        return (_rebuild_rule_error, (self.message, self.__dict__.copy()))


def _rebuild_rule_error(message: str, fields: dict) -> RuleError:
    return RuleError(
        message, **{k: fields.get(k) for k in ("file", "line", "col", "rule_id", "suggestion")}
    )


class RuleSetError(RuleError):
    """Every problem found while loading a rule set; ``errors`` lists them in file order."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            first.message,
            file=first.file,
            line=first.line,
            col=first.col,
            rule_id=first.rule_id,
            suggestion=first.suggestion,
        )

    def __str__(self) -> str:
        return "\n".join(RuleError.__str__(e) for e in self.errors)

    def __reduce__(self):
        return (RuleSetError, (self.errors,))
