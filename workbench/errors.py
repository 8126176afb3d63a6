"""The exception tree of Fraud Workbench.

::

    WorkbenchError                 root: every error we raise on purpose
     ├── ConfigError               a setting has a bad value, a file or option is missing
     ├── SourceError               a source cannot be opened or its mapping is wrong
     ├── RuleError                 one problem in a rule file: file, line, column, rule id
     │    └── RuleSetError         several RuleErrors found in one load
     └── StorageError              a statement failed or the database cannot be used
          ├── DatabaseUnavailable  transient: the server cannot be reached, dropped the
          │                        connection, or is short of resources (SQLSTATE 08, 57P0x,
          │                        40001, 40P01, 53, 55P03...): trying again later may succeed
          ├── DataRefused          the server refused some rows for their values (SQLSTATE 22,
          │                        23, 54): retrying the same rows cannot help, isolate them
          └── SchemaError          the statement cannot run on this database: the code or the
                                   schema is wrong (SQLSTATE 42, 3F, 0A, XX, ...): stop

Which subclass a driver error becomes is decided by its SQLSTATE, never by the driver's
exception class (:func:`workbench.storage.connection.classify`).

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


class DataRefused(StorageError):
    """The server refused a statement for the values of some rows; a retry cannot succeed.

    ``sqlstate`` is the server's five-character code (e.g. ``54000``: an index row too big);
    ``reason`` the server's message alone (``message`` also says what was being done).

    >>> error = DataRefused("cannot write batch: value too long", sqlstate="22001",
    ...                     reason="value too long")
    >>> str(error), error.sqlstate, error.reason
    ('cannot write batch: value too long', '22001', 'value too long')
    """

    def __init__(
        self, message: str, *, sqlstate: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.reason = message if reason is None else reason

    def __reduce__(self):
        return (_rebuild_data_refused, (str(self), self.sqlstate, self.reason))


def _rebuild_data_refused(message: str, sqlstate: str | None, reason: str) -> DataRefused:
    return DataRefused(message, sqlstate=sqlstate, reason=reason)


class SchemaError(StorageError):
    """A statement cannot run on this database (an unknown table or column, a type mismatch,
    an unsupported feature): the code or the schema is wrong, and retrying cannot help."""


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
