"""A real PostgreSQL database seeded by the simulator pipeline, for the notebooks to read.

The server is the one of ``tests/conftest.py``. The database is created fresh, migrated,
filled by the real pipeline for a bounded number of rows and dropped WITH FORCE at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
SEED_ROWS = 12_000
# ~1,000 transactions per simulated day: about 12 days of history, longer than the default
# rules' 7-day label delay; fraud more frequent than the defaults so every scenario shows.
SIMULATOR = {
    "seed": 5,
    "sim_customers": 1500,
    "sim_terminals": 400,
    "batch_rows": 1000,
    "rate": 1000.0,
    "sim_speedup": 86_400.0,
    "fraud_compromised_terminal": 0.005,
    "fraud_leaked_card": 0.005,
    "fraud_card_testing": 0.002,
    "fraud_account_takeover": 0.003,
}


@pytest.fixture(scope="session")
def seeded_dsn(databases) -> Iterator[str]:
    """DSN of a fresh database holding ``SEED_ROWS`` simulated, scored transactions."""
    with databases.fresh("wb_nb", migrate=True) as dsn:
        ruleset = load_rules(ROOT / "rules")
        writer = RetryingWriter(
            dsn,
            source="simulator",
            worker="notebook-tests",
            alert_min_band=ruleset.alert.min_band,
            alert_dedup_s=ruleset.alert.dedup_s,
        )
        pipeline = Pipeline(Simulator(**SIMULATOR), Detector(ruleset), writer)
        asyncio.run(pipeline.run(max_records=SEED_ROWS))
        yield dsn


from nb_offline import offline_browser  # noqa: E402, F401  (a fixture for the notebook tests)
