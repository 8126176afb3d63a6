"""A Kafka topic as a source: one consumer-group member, offsets committed after the database.

``--source kafka://host:port[,host:port]/topic?group=NAME&option=value`` names the brokers,
the topic and the consumer group; every other query parameter is a client option passed to
`confluent-kafka <https://docs.confluent.io/platform/current/clients/confluent-kafka-python>`_
as it is (``security.protocol=SASL_SSL``, ``sasl.mechanism=...``, ``fetch.min.bytes=...``). So
Apache Kafka, Redpanda or MSK is chosen by configuration alone.

Each message is one transaction: key ``card_id`` (so one card's transactions stay in order in
one partition), value a JSON object of the transaction's fields (:func:`encode` writes it,
``workbench produce`` sends it). A batch's ``position`` is ``{partition: next offset}`` of
the messages it holds; the pipeline calls :meth:`KafkaSource.ack` with it only after the
batch's PostgreSQL commit, and only then is the offset committed to the group. A worker
killed between the two has stored the batch and not committed its offsets: whoever consumes
those partitions next reads that batch again, and the writer (idempotent on ``tx_id``)
stores none of it twice. Offsets are never taken from the broker's high watermark.

Options the correctness of this depends on are fixed and cannot be overridden: no automatic
offset commit or store, ``cooperative-sticky`` assignment. A message that is not a JSON
object, or whose fields are refused by :func:`workbench.schema.coerce`, is a dead letter
with its partition and offset in its reason, and its offset is committed like any other.
So is a message that is not in the partition Kafka's default partitioner (murmur2 of the
key's bytes, :mod:`.partitioner`) gives its key, or has no key: a worker given a partition
rebuilds the feature state of the cards whose keys hash to it, and would miss that message's
card history. (librdkafka's default partitioner is CRC32, not murmur2; and its batch produce
call ignores a message's own partition: :func:`produce` sends each partition's messages in a
call of their own.)

Partition assignment and revocation are recorded (never acted on inside the client's
callback) and handed out by :meth:`KafkaSource.take_assignment`, which the pipeline calls
between batches to rebuild the feature state of the partitions it owns.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson

from workbench import schema
from workbench.errors import SourceError
from workbench.settings import Settings
from workbench.sources.base import SourceBatch, register_source
from workbench.sources.partitioner import partition_of

log = logging.getLogger(__name__)

SCHEME = "kafka"
FIXED = {
    "enable.auto.commit": "false",
    "enable.auto.offset.store": "false",
    "partition.assignment.strategy": "cooperative-sticky",
}
"""Client options the exactly-once effects rely on; a URL that sets them otherwise is refused."""


@dataclass(frozen=True)
class KafkaAddress:
    """``kafka://brokers/topic?group=...&client.option=...`` taken apart and checked."""

    brokers: str
    topic: str
    group: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> KafkaAddress:
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise SourceError(f"not a kafka:// URL: {url!r}")
        topic = unquote(parts.path.strip("/"))
        if not parts.netloc or not topic or "/" in topic:
            raise SourceError(
                f"a Kafka URL is kafka://host:port[,host:port]/topic?group=NAME, got {url!r}"
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        group = options.pop("group", None) or None
        for key, value in options.items():
            if key in FIXED and value != FIXED[key]:
                raise SourceError(f"{key}={value} is not allowed: the workbench needs {FIXED[key]}")
        return cls(parts.netloc, topic, group, options)

    @property
    def label(self) -> str:
        """What stored rows name as their origin: brokers, topic and group (no options,
        which may hold credentials)."""
        return f"{SCHEME}://{self.brokers}/{self.topic}" + (
            f"?group={self.group}" if self.group else ""
        )

    def client_config(self, **extra: str) -> dict[str, str]:
        return {"bootstrap.servers": self.brokers, **self.options, **extra}


def encode(frame: pd.DataFrame) -> tuple[list[bytes], list[bytes]]:
    """Keys (``card_id``) and JSON values of a typed batch, vectorized (no per-row Python
    but the split of one text into lines); ``ts`` to the microsecond (truncated)."""
    if not len(frame):
        return [], []
    # ts to the microsecond, as PostgreSQL stores it: the feature state a worker rebuilds
    # from stored history then holds exactly the times the stream gave it.
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
    values = text.encode().splitlines()
    keys = frame["card_id"].astype(str).str.encode("utf-8").tolist()
    return keys, values


def decode(values: list[bytes], where: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed batch and dead letters from message values; ``where`` names each message
    (``partition/offset``) in the reason of a refused one."""
    if not values:
        return schema.empty_batch(), schema.empty_dead_letters()
    try:
        # One parse for the whole batch; a value with a newline is not one record of it.
        if any(b"\n" in v for v in values):
            raise pa.ArrowInvalid("a value spans lines")
        raw = pajson.read_json(pa.py_buffer(b"\n".join(values))).to_pandas()
        if len(raw) != len(values):
            raise pa.ArrowInvalid("record count differs from message count")
        frame, dead = schema.coerce(raw, lines=np.asarray(where, dtype=object))
        return frame, dead
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _decode_each(values, where)


def _decode_each(values: list[bytes], where: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Only for a batch that fails the one-parse path: mixed types, bad JSON. Per-message
    # Python here costs the bad batch only.
    records, kept, bad_raw, bad_reason = [], [], [], []
    for value, at in zip(values, where, strict=True):
        try:
            record = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            record, why = None, f"not JSON: {exc}"
        else:
            why = None if isinstance(record, dict) else "not a JSON object"
        if why is None:
            records.append(record)
            kept.append(at)
        else:
            bad_raw.append(value[: schema.TEXT_MAX_LEN * 16].decode("utf-8", "replace"))
            bad_reason.append(f"{at}: {why}")
    frame, dead = schema.coerce(pd.DataFrame.from_records(records), lines=np.asarray(kept))
    if bad_raw:
        bad = pd.DataFrame({"raw": bad_raw, "reason": bad_reason})
        dead = pd.concat([dead, bad], ignore_index=True) if len(dead) else bad
    return frame, dead


def misplaced(keys: list, partitions: np.ndarray, count: int) -> np.ndarray:
    """Whether each message (its key, bytes or None, and the partition it was read from)
    is not where Kafka's default partitioner puts its key's bytes among ``count``
    partitions; a message without a key has no such place and is misplaced."""
    arr = pa.array(keys, type=pa.binary())
    wrong = partition_of(arr, count) != partitions
    return wrong | arr.is_null().to_numpy(zero_copy_only=False)


def _expected(key: bytes | None, count: int) -> int | str:
    if key is None:
        return "none (no key)"
    return int(partition_of(pa.array([key], type=pa.binary()), count)[0])


@register_source(SCHEME)
class KafkaSource:
    """Batches of up to ``batch_rows`` messages from one consumer-group member."""

    name = SCHEME
    blocking = True
    """:meth:`next_batch` waits on the network: the pipeline calls it from a thread."""

    def __init__(
        self,
        url: str,
        *,
        batch_rows: int | None = None,
        settings: Settings | None = None,
        poll_s: float = 0.5,
        group: str | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.address = KafkaAddress.parse(url)
        group = group or self.address.group
        if not group:
            raise SourceError(f"{self.address.label}: a consumer group is needed (?group=NAME)")
        self.group = group
        if batch_rows is None:
            batch_rows = settings.batch_rows if settings is not None else 1000
        self.batch_rows, self.poll_s = int(batch_rows), float(poll_s)
        config = self.address.client_config(
            **{"group.id": group, "auto.offset.reset": "earliest", **FIXED}
        )
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._changed = False
        self.rebalances = 0
        self.lag: dict[int, int] = {}
        self._committed: dict[int, int] = {}  # partition -> offset this member committed
        self.log_losses: list[tuple[int, int, int]] = []
        """(partition, offset committed here, offset read again below it), per gap found."""
        self.last_commit: float | None = None
        self._last_error = ("", 0.0)
        self._first: dict[int, int] = {}  # first offset per partition of the last batch
        self._count: int | None = None  # partitions of the topic
        self._consumer = Consumer(config, logger=log)
        self._consumer.subscribe(
            [self.address.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )  # fmt: skip
        self._closed = False

    @property
    def label(self) -> str:
        return self.address.label

    # Called by the client inside consume(), on the thread that consumes: only record.
    def _on_assign(self, consumer, partitions) -> None:
        with self._lock:
            self._owned |= {p.partition for p in partitions}
            self._changed = True
            self.rebalances += 1
        log.info("kafka: assigned %s", sorted(p.partition for p in partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        with self._lock:
            self._owned -= {p.partition for p in partitions}
            self._changed = True
            self.rebalances += 1
        log.info("kafka: revoked %s", sorted(p.partition for p in partitions))

    @property
    def partitions(self) -> list[int]:
        """The partitions this member owns now."""
        with self._lock:
            return sorted(self._owned)

    def take_assignment(self) -> list[int] | None:
        """The partitions owned now if the assignment changed since the last call, else None."""
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            return sorted(self._owned)

    def partition_count(self) -> int:
        """Partitions of the topic (from the broker's metadata, asked once)."""
        if self._count is None:
            meta = self._consumer.list_topics(self.address.topic, timeout=10)
            topic = meta.topics.get(self.address.topic)
            if topic is None or topic.error is not None:
                error = getattr(topic, "error", None)
                raise SourceError(f"{self.label}: topic not found ({error})")
            self._count = len(topic.partitions)
        return self._count

    def next_batch(self) -> SourceBatch | None:
        """Up to ``batch_rows`` messages (waiting at most ``poll_s``); an empty batch with
        position ``{}`` when none arrived; ``None`` once closed."""
        if self._closed:
            return None
        messages = self._consumer.consume(self.batch_rows, self.poll_s)
        created = time.time()
        values, where, cards, parts, keys, first = [], [], [], [], {}, {}
        for m in messages:  # the client hands out message objects: one step per message
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise SourceError(f"{self.label}: {err.str()}")
                self._warn(err.str())
                continue
            part, off = m.partition(), m.offset()
            values.append(m.value() or b"")
            where.append(f"partition {part} offset {off}")
            cards.append(m.key())
            parts.append(part)
            keys[part] = off + 1
            first.setdefault(part, off)
        self._first = first
        self._check_continuity(first)
        values, where, astray = self._placed(values, where, cards, parts)
        frame, dead = decode(values, where)
        if len(astray):
            dead = pd.concat([dead, astray], ignore_index=True) if len(dead) else astray
        return SourceBatch(frame=frame, dead=dead, position=keys, created_at=created)

    def _placed(
        self, values: list[bytes], where: list[str], keys: list, parts: list[int]
    ) -> tuple[list[bytes], list[str], pd.DataFrame]:
        # A card's features are rebuilt from the stored rows of the cards whose key Kafka's
        # default partitioner puts in the partitions owned (:mod:`.rebuild`): a message in
        # another partition (a producer with another partitioner, or none for its key) would
        # be missing from its card's rebuilt state, so it is refused, loudly.
        if not values:
            return values, where, schema.empty_dead_letters()
        wrong = misplaced(keys, np.asarray(parts, dtype=np.int64), self.partition_count())
        if not wrong.any():
            return values, where, schema.empty_dead_letters()
        bad = np.flatnonzero(wrong).tolist()
        log.error(
            "kafka: %d message(s) of %s are not in the partition Kafka's default (murmur2) "
            "partitioner gives their key: dead letters (the producer must partition by "
            "card_id with murmur2, as `workbench produce` does)", len(bad), self.label,
        )  # fmt: skip
        astray = pd.DataFrame(
            {
                "raw": [values[i][: schema.TEXT_MAX_LEN * 16].decode("utf-8", "replace")
                        for i in bad],
                "reason": [f"{where[i]}: key {keys[i]!r} belongs in partition "
                           f"{_expected(keys[i], self._count)} (murmur2)" for i in bad],
            }
        )  # fmt: skip
        keep = np.flatnonzero(~wrong).tolist()
        return [values[i] for i in keep], [where[i] for i in keep], astray

    def _warn(self, text: str) -> None:
        # While the broker is away every poll says so: log each new text, repeats once a minute.
        now = time.monotonic()
        if text != self._last_error[0] or now - self._last_error[1] > 60:
            log.warning("kafka: %s (waiting for the broker)", text)
            self._last_error = (text, now)

    def expect(self, offsets: dict[int, int]) -> None:
        """Offsets stored with committed batches (by any worker): a partition this member
        owns that is read again below one is reported as a log that lost messages (checked
        from the last batch read on)."""
        owned = set(self.partitions)
        for part, offset in offsets.items():
            if part in owned:
                self._committed[part] = max(self._committed.get(part, -1), int(offset))
        self._check_continuity(self._first)

    def _check_continuity(self, first: dict[int, int]) -> None:
        # A partition read again below an offset this member committed has lost what was
        # there: a memory-only broker restarted, the topic was recreated, or retention
        # deleted it. Nothing says how much without trusting the broker's high watermark,
        # so the gap is reported as what this member knows, never hidden.
        for part, offset in first.items():
            committed = self._committed.pop(part, None)
            if committed is not None and offset < committed:
                self.log_losses.append((part, committed, offset))
                log.error(
                    "kafka: %s partition %d starts again at offset %d, below offset %d "
                    "committed here: the broker lost messages (restarted without storage, "
                    "or the topic was recreated); those not stored already are lost",
                    self.address.topic, part, offset, committed,
                )  # fmt: skip

    def ack(self, position: dict[int, int]) -> None:
        """Commit the offsets of a batch stored in PostgreSQL (synchronously: when this
        returns, the group knows them). A partition revoked meanwhile is left to its new
        owner, who reads the batch again and stores none of it twice."""
        if not position or self._closed:
            return
        from confluent_kafka import KafkaException, TopicPartition

        owned = set(self.partitions)
        offsets = [
            TopicPartition(self.address.topic, p, o) for p, o in position.items() if p in owned
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
            self._committed.update((o.partition, o.offset) for o in offsets)
            self.last_commit = time.time()
        except KafkaException as exc:  # a rebalance or an outage: the batch is read again
            log.warning("kafka: offset commit failed, the batch will be read again: %s", exc)

    def health(self) -> tuple[list[int], int | None]:
        """The partitions owned and the messages behind the end of their logs, from the
        client's cached figures (no request to the broker). For the health view only: a
        broker's high watermark may be wrong, so nothing else relies on it."""
        from confluent_kafka import TopicPartition

        owned, behind, known = self.partitions, 0, False
        for p in owned:
            tp = TopicPartition(self.address.topic, p)
            try:
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                pos = self._consumer.position([tp])[0].offset
            except Exception:  # figures only: unknown until the client has fetched
                continue
            if high is None or high < 0:
                continue
            self.lag[p] = max(0, high - (pos if pos >= 0 else low))
            behind, known = behind + self.lag[p], True
        return owned, behind if known else None

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        if not self._closed:
            self._closed = True
            try:
                self._consumer.close()
            except Exception:  # closing after the broker is gone: nothing left to release
                log.debug("closing the consumer", exc_info=True)


def _send(producer, topic: str, partition: int, messages: list[dict], delivered) -> int:
    """Queue ``messages`` for ``partition``, again for those the local queue refused;
    returns the messages queued."""
    queued = 0
    while messages:
        queued += producer.produce_batch(
            topic, messages, partition=partition, on_delivery=delivered
        )
        # Messages the local queue refused carry an error: send those again.
        messages = [m for m in messages if "_error" in m]
        for m in messages:
            del m["_error"]
        producer.poll(0.05 if messages else 0)
    return queued


def produce(frames, url: str) -> int:
    """Send batches to the topic of ``url``, each transaction keyed by its ``card_id`` in the
    partition Kafka's default partitioner gives that key (:mod:`.partitioner`); returns the
    messages sent. The producer is idempotent (``enable.idempotence``): a retried send is not
    written twice. Raises :class:`SourceError` when a message could not be delivered.
    """
    from confluent_kafka import KafkaException, Producer

    address = KafkaAddress.parse(url)
    config = address.client_config(**{"enable.idempotence": "true"})
    producer = Producer(config, logger=log)
    failures: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            failures.append(err.str())

    try:
        meta = producer.list_topics(address.topic, timeout=10).topics.get(address.topic)
    except KafkaException as exc:
        raise SourceError(f"{address.label}: {exc}") from None
    if meta is None or meta.error is not None or not meta.partitions:
        raise SourceError(f"{address.label}: topic not found (create it with its partitions)")
    count, sent = len(meta.partitions), 0
    for frame in frames:
        keys, values = encode(frame)
        parts = partition_of(frame["card_id"].astype(str).tolist(), count)
        # produce_batch sends a whole batch to the one partition it is given: a message's own
        # "partition" is ignored (librdkafka's batch API), and without one the client's
        # default partitioner (CRC32, not Kafka's murmur2) picks it. So one call per
        # partition, each with that partition's messages in their order.
        for part in np.unique(parts).tolist():
            at = np.flatnonzero(parts == part).tolist()
            messages = [{"key": keys[i], "value": values[i]} for i in at]
            sent += _send(producer, address.topic, part, messages, delivered)
    left = producer.flush(30)
    if left or failures:
        raise SourceError(
            f"{address.label}: {left + len(failures)} message(s) not delivered"
            + (f" ({failures[0]})" if failures else "")
        )
    return sent
