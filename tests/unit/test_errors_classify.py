"""Driver errors are classified by SQLSTATE, never by the driver's exception class."""

from __future__ import annotations

import pickle

import psycopg
import pytest

from workbench.errors import DatabaseUnavailable, DataRefused, SchemaError, StorageError
from workbench.storage.connection import Failure, classify, storage_errors, translate


def _error(sqlstate: str) -> psycopg.Error:
    """The driver's exception for ``sqlstate``, as the server would make psycopg raise it."""
    return psycopg.errors.lookup(sqlstate)("server message")


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("08000", Failure.TRANSIENT),  # connection_exception
        ("08006", Failure.TRANSIENT),  # connection_failure
        ("57P01", Failure.TRANSIENT),  # admin_shutdown
        ("57P02", Failure.TRANSIENT),  # crash_shutdown
        ("57P03", Failure.TRANSIENT),  # cannot_connect_now
        ("57014", Failure.TRANSIENT),  # query_canceled (statement timeout, admin cancel)
        ("40001", Failure.TRANSIENT),  # serialization_failure
        ("40P01", Failure.TRANSIENT),  # deadlock_detected
        ("53100", Failure.TRANSIENT),  # disk_full
        ("53200", Failure.TRANSIENT),  # out_of_memory
        ("53300", Failure.TRANSIENT),  # too_many_connections
        ("55P03", Failure.TRANSIENT),  # lock_not_available
        ("25P03", Failure.TRANSIENT),  # idle_in_transaction_session_timeout
        ("54000", Failure.DATA),  # program_limit_exceeded: index row too big
        ("54001", Failure.DATA),  # statement_too_complex
        ("22001", Failure.DATA),  # string_data_right_truncation
        ("22003", Failure.DATA),  # numeric_value_out_of_range
        ("22P02", Failure.DATA),  # invalid_text_representation
        ("22021", Failure.DATA),  # character_not_in_repertoire
        ("23502", Failure.DATA),  # not_null_violation
        ("23505", Failure.DATA),  # unique_violation
        ("23514", Failure.DATA),  # check_violation
        ("42703", Failure.FATAL),  # undefined_column
        ("42P01", Failure.FATAL),  # undefined_table
        ("42501", Failure.FATAL),  # insufficient_privilege
        ("3F000", Failure.FATAL),  # invalid_schema_name
        ("0A000", Failure.FATAL),  # feature_not_supported
        ("XX000", Failure.FATAL),  # internal_error
        ("57P04", Failure.FATAL),  # database_dropped
    ],
)
def test_classification_follows_the_sqlstate(sqlstate, expected):
    error = _error(sqlstate)
    assert error.sqlstate == sqlstate
    assert classify(error) is expected


def test_an_index_row_too_big_is_data_although_the_driver_calls_it_operational():
    # The bug this classification exists for: every OperationalError was "unavailable".
    error = _error("54000")
    assert isinstance(error, psycopg.OperationalError)
    assert classify(error) is Failure.DATA


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        psycopg.OperationalError("the connection is closed"),
        psycopg.InterfaceError("the connection is lost"),
        psycopg.errors.ConnectionTimeout("connection timeout expired"),
    ],
)
def test_a_client_side_connection_error_without_sqlstate_is_transient(error):
    assert error.sqlstate is None
    assert classify(error) is Failure.TRANSIENT


def test_any_other_error_without_sqlstate_is_fatal():
    assert classify(psycopg.ProgrammingError("cannot adapt type")) is Failure.FATAL
    assert classify(ValueError("not a driver error")) is Failure.FATAL


def test_translate_gives_each_kind_its_error_with_one_line():
    transient = translate(_error("57P01"), "cannot write batch")
    data = translate(psycopg.errors.lookup("54000")("ERROR:  index row size\nDETAIL: x"), "w")
    fatal = translate(_error("42P01"), "cannot write batch")
    assert type(transient) is DatabaseUnavailable
    assert type(data) is DataRefused and data.sqlstate == "54000"
    assert (str(data), data.reason) == ("w: index row size", "index row size")
    assert type(fatal) is SchemaError and str(fatal) == "cannot write batch: server message"
    assert all(isinstance(e, StorageError) for e in (transient, data, fatal))


def test_storage_errors_raises_the_subclass_the_sqlstate_calls_for():
    with pytest.raises(DataRefused) as info, storage_errors("cannot store"):
        raise _error("22003")
    assert info.value.sqlstate == "22003"
    assert isinstance(info.value.__cause__, psycopg.errors.NumericValueOutOfRange)
    with pytest.raises(SchemaError), storage_errors("cannot read"):
        raise _error("42703")


def test_data_refused_survives_pickling():
    error = DataRefused("cannot write batch: too long", sqlstate="22001", reason="too long")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.sqlstate, copy.reason) == (str(error), "22001", "too long")
