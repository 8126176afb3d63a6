"""Risk bands: the one enumeration the rules, scoring, storage, notifications and the dashboard
share.

A band is stored and sent as its label (``"Low"``, ``"Medium"``, ``"High"``); rule files write
it in lower case (``alert: {min_band: high}``). Ranks are 1-based, so that 0 can mean "no
band" (an alert policy of ``none``, or a value that is not a band).

>>> Band.parse("high"), Band.HIGH.label, Band.parse(" Medium ") > Band.LOW
(<Band.HIGH: 3>, 'High', True)
>>> alert_rank("none"), alert_rank("High")
(0, 3)
>>> ranks(["Low", "high", None, "x"]).tolist()
[1, 3, 0, 0]
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import numpy as np
import pandas as pd

from workbench.errors import ConfigError


class Band(enum.IntEnum):
    """A risk band, ordered by severity."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        """The stored and displayed name: ``Low``, ``Medium`` or ``High``."""
        return self.name.capitalize()

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, value: str | Band) -> Band:
        """The band named ``value``, case-insensitive; :class:`ConfigError` otherwise."""
        if isinstance(value, Band):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise ConfigError(f"unknown band {value!r}: use one of {', '.join(LABELS)}") from None


LABELS: tuple[str, ...] = tuple(b.label for b in Band)
"""The band labels in rank order: ``("Low", "Medium", "High")``."""

_NO_BAND = ("", "none", "off")


def alert_rank(value: str | Band | None) -> int:
    """Rank of the lowest band that raises an alert; 0 (no alerts) for ``None``, ``"none"``
    or ``"off"``. :class:`ConfigError` for anything else that is not a band."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NO_BAND):
        return 0
    try:
        return int(Band.parse(value))
    except ConfigError:
        raise ConfigError(
            f"unknown alert band {value!r}: use one of {', '.join(LABELS)} or none"
        ) from None


def ranks(values: pd.Series | np.ndarray | Iterable[object]) -> np.ndarray:
    """Vectorized 1-based ranks of band names (case-insensitive); 0 for anything else."""
    text = pd.Series(values, dtype="str").str.capitalize()
    return (_INDEX.get_indexer(text) + 1).astype(np.int8)


_INDEX = pd.Index(LABELS)
