from __future__ import annotations

import pytest

from workbench.errors import ConfigError
from workbench.settings import SETTINGS, Settings


def test_defaults_parse_and_every_setting_has_help() -> None:
    s = Settings.load({})
    for setting in SETTINGS:
        assert setting.help.strip(), setting.name
        assert getattr(s, setting.name) is not None


def test_environment_then_overrides_win() -> None:
    s = Settings.load({"WORKBENCH_RATE": "250", "WORKBENCH_SEED": "7"}, seed=9)
    assert s.rate == 250.0
    assert s.seed == 9


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"WORKBENCH_RATE": "fast"}, "WORKBENCH_RATE"),
        ({"WORKBENCH_RATE": "-5"}, "must be positive"),
        ({"WORKBENCH_FRAUD_LEAKED_CARD": "2"}, "between 0 and 1"),
        ({"WORKBENCH_ALLOWED_LATENESS": "soon"}, "not a duration"),
        ({"WORKBENCH_LOG_LEVEL": "loud"}, "must be one of"),
        ({"WORKBENCH_DISPLAY_TIMEZONE": "Mars/Olympus"}, "not a time zone: 'Mars/Olympus'"),
        ({"WORKBENCH_DISPLAY_TIMEZONE": "../../etc/passwd"}, "IANA name"),
        ({"WORKBENCH_DISPLAY_TIMEZONE": ""}, "not a time zone"),
        ({"WORKBENCH_CASE_SLA": "tomorrow"}, "not a duration"),
        ({"WORKBENCH_CASE_SLA": "0h"}, "must be positive"),
    ],
)
def test_bad_values_are_one_readable_line(env: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load({}, sped=3)


def test_settings_are_read_only() -> None:
    s = Settings.load({})
    with pytest.raises(AttributeError):
        s.rate = 5  # type: ignore[misc]
    assert s.replace(rate="10").rate == 10.0


def test_display_timezone_and_case_sla() -> None:
    default = Settings.load({})
    assert (default.display_timezone, default.case_sla) == ("UTC", 86400.0)
    s = Settings.load({"WORKBENCH_DISPLAY_TIMEZONE": " Europe/Paris ", "WORKBENCH_CASE_SLA": "2h"})
    assert (s.display_timezone, s.case_sla) == ("Europe/Paris", 7200.0)
