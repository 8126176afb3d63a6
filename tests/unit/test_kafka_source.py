"""The Kafka source's URL, message codec and partitioner (no broker: see tests/integration)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from workbench.errors import SourceError
from workbench.settings import Settings
from workbench.sources.kafka import FIXED, KafkaAddress, decode, encode, misplaced
from workbench.sources.partitioner import partition_of
from workbench.sources.simulator import Simulator


def test_url_names_brokers_topic_group_and_passes_client_options() -> None:
    a = KafkaAddress.parse("kafka://b1:9092,b2:9092/tx?group=g&security.protocol=SASL_SSL")
    assert (a.brokers, a.topic, a.group) == ("b1:9092,b2:9092", "tx", "g")
    config = a.client_config(**FIXED)
    assert config["bootstrap.servers"] == "b1:9092,b2:9092"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["enable.auto.commit"] == "false"
    assert "security" not in a.label  # options may hold credentials


@pytest.mark.parametrize(
    "url",
    [
        "kafka://b:9092",
        "kafka:///tx",
        "http://b:9092/tx",
        "kafka://b:9092/a/b",
        "kafka://b:9092/tx?enable.auto.commit=true",
        "kafka://b:9092/tx?partition.assignment.strategy=range",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(SourceError):
        KafkaAddress.parse(url)


def test_messages_round_trip_to_the_same_typed_batch() -> None:
    frame = Simulator(Settings.load({"WORKBENCH_SEED": "3"})).next_batch(300).frame
    keys, values = encode(frame)
    assert keys == [c.encode() for c in frame["card_id"]]
    back, dead = decode(values, [f"partition 0 offset {i}" for i in range(len(values))])
    assert dead.empty
    # to the microsecond, the precision PostgreSQL stores
    frame = frame.assign(ts=frame["ts"].dt.floor("us"))
    pd.testing.assert_frame_equal(back.reset_index(drop=True), frame.reset_index(drop=True))


def test_a_bad_message_is_a_dead_letter_naming_its_offset() -> None:
    frame = Simulator(Settings.load({"WORKBENCH_SEED": "3"})).next_batch(5).frame
    _, values = encode(frame)
    values[2] = b"{not json"
    values[3] = b"[1, 2]"
    back, dead = decode(values, [f"partition 1 offset {i}" for i in range(5)])
    assert len(back) == 3 and len(dead) == 2
    assert dead["reason"].str.contains("partition 1 offset 2").any()
    assert dead["reason"].str.contains("partition 1 offset 3: not a JSON object").any()


def test_partitions_are_stable_and_cover_the_range() -> None:
    keys = [f"card_{i}" for i in range(5000)]
    parts = partition_of(keys, 6)
    assert set(parts.tolist()) == set(range(6))
    assert (partition_of(keys, 6) == parts).all()
    assert partition_of([], 6).tolist() == []


def test_a_message_outside_its_keys_partition_is_misplaced() -> None:
    keys = [f"card_{i}".encode() for i in range(50)] + ["é€😀x".encode(), b""]
    right = partition_of(pa.array(keys, type=pa.binary()), 6)
    assert not misplaced(keys, right, 6).any()
    moved = right.copy()
    moved[[3, 50]] = (moved[[3, 50]] + 1) % 6
    assert np.flatnonzero(misplaced(keys, moved, 6)).tolist() == [3, 50]
    # A message without a key has no partition of its own: its card could be anywhere.
    assert misplaced([None, b"card_1"], np.array([0, right[1]]), 6).tolist() == [True, False]
