"""``workbench run`` in a child process, optionally killed (SIGKILL) at a chosen moment.

``WB_TEST_KILL_AT_ACK=N``: the process kills itself when the N-th stored batch is
acknowledged, i.e. after that batch's PostgreSQL commit and before its offsets are committed
to the consumer group: the worst moment for exactly-once effects.

``WB_TEST_NO_TAIL=1``: the worker does not follow other workers' committed rows (the
behaviour before :mod:`workbench.pipeline.tail`), to show what a test of it proves.
"""

from __future__ import annotations

import os
import signal
import sys

from workbench.cli.main import main
from workbench.sources.kafka import KafkaSource

_KILL_AT = int(os.environ.get("WB_TEST_KILL_AT_ACK", "0"))

if _KILL_AT:
    _ack = KafkaSource.ack
    _acks = [0]

    def _ack_or_die(self: KafkaSource, position: dict) -> None:
        if position:
            _acks[0] += 1
            if _acks[0] == _KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)
        _ack(self, position)

    KafkaSource.ack = _ack_or_die  # type: ignore[method-assign]

if os.environ.get("WB_TEST_NO_TAIL") == "1":
    from workbench.pipeline.tail import CommittedTail

    CommittedTail.feed = lambda self, detector, batch: 0  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
