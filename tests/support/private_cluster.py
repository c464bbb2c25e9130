"""A 3-node Kafka cluster of a test's own (`KAFKA_BROKERS=3 infra/kafka.sh`, i.e.
infra/kafka/cluster.sh), on its own ports and data, for the tests that kill one of its brokers.

Node N listens on `port + 2(N-1)` (its controller on the next port); the files live in
.data/kafka-cluster-<port>, and every start of `private_kafka_cluster` begins from empty data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.support.private_infra import DATA, _OwnKafka, _run_script

BROKERS = 3


@dataclass
class PrivateKafkaCluster(_OwnKafka):
    port: int
    topic: str = "events"
    home: Path = field(init=False)
    outages: list[float] = field(default_factory=list)  # seconds each lost node was away
    killed: list[int] = field(default_factory=list)  # node ids, in the order they were killed

    def __post_init__(self) -> None:
        self.home = DATA / f"kafka-cluster-{self.port}"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + 2 * n}" for n in range(BROKERS))

    @property
    def env(self) -> dict[str, str]:
        return self._kafka_env(BROKERS)

    def _script(self, *args: str) -> str:
        return _run_script("kafka.sh", *args, env=self.env, timeout=240)

    def start(self, node: int | None = None) -> None:
        """All nodes (or one): returns once each started node answers and the topics exist."""
        self._script("start", *([str(node)] if node else []))

    def stop(self, node: int | None = None) -> None:
        self._script("stop", *([str(node)] if node else []))

    def kill(self, node: int) -> None:
        """SIGKILL one node: a hard failure, no controlled shutdown."""
        self._script("kill", str(node))
        self.killed.append(node)

    def reset(self) -> None:
        self._script("reset")

    def in_sync_replicas(self) -> dict[str, list[int]]:
        """Per topic, the ISR size of each partition (`infra/kafka.sh isr`)."""
        result: dict[str, list[int]] = json.loads(self._script("isr"))
        return result

    def wait_for_full_isr(self, timeout: float = 120) -> float:
        """Until every partition of both topics has all its replicas in sync; seconds waited."""
        began = time.monotonic()
        while True:
            isr = self.in_sync_replicas()
            if isr and all(n == BROKERS for sizes in isr.values() for n in sizes):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise AssertionError(f"in-sync replicas not back to {BROKERS}: {isr}")
            time.sleep(0.5)

    def leader_of(self, partition: int = 0) -> int:
        """The node leading one partition of the topic (killing it forces a leader election)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        leader: int = (
            admin.list_topics(self.topic, timeout=10)
            .topics[self.topic]
            .partitions[partition]
            .leader
        )
        return leader

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Inside the block one node is dead (SIGKILL; the leader of partition 0); on leaving it
        is started again and the block ends once it is back in every ISR."""
        node = self.leader_of()
        began = time.monotonic()
        self.kill(node)
        try:
            yield
        finally:
            self.start(node)
            self.wait_for_full_isr()
            self.outages.append(time.monotonic() - began)


@contextmanager
def private_kafka_cluster(port: int) -> Iterator[PrivateKafkaCluster]:
    """A fresh cluster (empty data; topics `events`, `events.dlq`: 3 partitions, replication
    factor 3, min.insync.replicas=2), stopped on the way out whatever happened."""
    cluster = PrivateKafkaCluster(port)
    cluster.reset()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
