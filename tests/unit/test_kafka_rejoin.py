"""A consumer must get back into its group after a broker outage (a flake of
tests/integration/test_kafka_outage_recovery.py: the mailer never re-joined). Two parts, both in
the one Kafka source of the projector and the mailer:
- commits never wait for the broker: librdkafka retries a commit caught by the outage until the
  broker is back, and a synchronous one blocked the loop all that time, rebalance unserved;
- the backstop: a member left outside its group for a minute while the cluster answers with the
  topic's partitions is replaced, like a fatal one (logged, counted)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

import mailer.bootstrap
import projector.bootstrap
from consuming.source import KafkaSource
from mailer.settings import MailerSettings
from projector.settings import ProjectorSettings
from runtime import metrics
from runtime.kafka import REJOIN_DEADLINE_SECONDS
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.consumer_fakes import FakeDeadLetters
from tests.unit.test_kafka_fatal_errors import FakeConsumer

Callback = Callable[[Any, list[TopicPartition]], None]


class GroupMember(FakeConsumer):
    """Keeps the rebalance callbacks; a synchronous commit waits for a broker that is down (as a
    real one caught by the outage does); the cluster's metadata answers or not."""

    def __init__(self, cluster_answers: bool = True) -> None:
        super().__init__([])
        self.callbacks: dict[str, Callback] = {}
        self.cluster_answers = cluster_answers
        self.commits: list[bool] = []  # asynchronous? per commit
        self.broker_back = threading.Event()
        self.closed_event = threading.Event()

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        super().subscribe(topics)
        self.callbacks = callbacks

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(asynchronous)
        if not asynchronous and not self.broker_back.wait(timeout=2):
            raise AssertionError("a synchronous commit blocked the loop while the broker was down")

    def list_topics(self, topic: str, timeout: float) -> Any:
        if not self.cluster_answers:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "all brokers down"))
        partitions = {i: SimpleNamespace(id=i) for i in range(3)}
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

    def close(self) -> None:
        super().close()
        self.closed_event.set()

    def revoke(self) -> None:
        self.callbacks["on_revoke"](self, [TopicPartition("events", p) for p in range(3)])

    def assign(self, partitions: list[int]) -> None:
        self.callbacks["on_assign"](self, [TopicPartition("events", p) for p in partitions])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source_of(*members: GroupMember, clock: Clock) -> tuple[KafkaSource, list[GroupMember]]:
    made: list[GroupMember] = []
    pending = iter(members)

    def factory(_config: dict[str, Any]) -> GroupMember:
        made.append(next(pending))
        return made[-1]

    return KafkaSource(KafkaSettings(), "mailer", consumer_factory=factory, clock=clock), made


def wired_source(service: str, member: GroupMember, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The KafkaSource that the service's own bootstrap builds, on the fake consumer."""
    kafka = functools.partial(KafkaSource, consumer_factory=lambda _config: member)
    if service == "projector":
        monkeypatch.setattr(projector.bootstrap, "KafkaSource", kafka)
        loop = projector.bootstrap.build_projector(
            DatabaseSettings(), KafkaSettings(), ProjectorSettings(), dead_letters=FakeDeadLetters()
        )
    else:
        monkeypatch.setattr(mailer.bootstrap, "KafkaSource", kafka)
        monkeypatch.setattr(mailer.bootstrap, "build_mailer_handler", lambda *_a: None)
        monkeypatch.setattr(mailer.bootstrap, "KafkaDeadLetters", lambda _k: FakeDeadLetters())
        loop = mailer.bootstrap.build_mailer(MailerSettings(), DatabaseSettings(), KafkaSettings())
    return loop._source


def replaced(group: str) -> float:
    value = metrics.KAFKA_CONSUMERS_REPLACED.labels(group, "outside_group")._value.get()
    return float(value)


@pytest.mark.parametrize("service", ["mailer", "projector"])
def test_an_offset_commit_during_a_broker_outage_does_not_block_either_consumers_loop(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = GroupMember()
    source = wired_source(service, member, monkeypatch)

    source.commit({("events", 0): 7})  # the mailer's used to wait here for the broker's return

    assert member.commits == [True]


def test_a_member_outside_its_group_for_a_minute_while_the_cluster_answers_is_replaced() -> None:
    clock = Clock()
    stuck, fresh = GroupMember(), GroupMember()
    source, made = source_of(stuck, fresh, clock=clock)
    stuck.assign([0, 1, 2])
    stuck.revoke()  # the session timed out during the outage; no assignment ever follows
    before = replaced("mailer")

    clock.now += REJOIN_DEADLINE_SECONDS - 1
    source.poll(10, 0)
    assert made == [stuck], "replaced before the deadline"

    clock.now += 2
    source.poll(10, 0)
    assert made == [stuck, fresh] and fresh.subscribed == ["events"]
    assert stuck.closed_event.wait(timeout=5), "the stuck consumer is closed (on its own thread)"
    assert replaced("mailer") == before + 1


def test_a_broker_outage_alone_never_replaces_the_consumer() -> None:
    clock = Clock()
    member = GroupMember(cluster_answers=False)
    source, made = source_of(member, GroupMember(), clock=clock)
    member.revoke()

    for _ in range(10):  # ten minutes of outage
        clock.now += REJOIN_DEADLINE_SECONDS
        source.poll(10, 0)

    assert made == [member] and not member.closed


def test_an_empty_assignment_is_membership_when_the_group_has_more_members_than_partitions() -> (
    None
):
    clock = Clock()
    member = GroupMember()
    source, made = source_of(member, GroupMember(), clock=clock)
    member.revoke()
    member.assign([])  # the rebalance completed; the other members have every partition

    clock.now += 10 * REJOIN_DEADLINE_SECONDS
    source.poll(10, 0)

    assert made == [member]


@pytest.mark.parametrize("assigned_first", [True, False], ids=["after-revoke", "never-assigned"])
def test_a_member_that_gets_its_assignment_in_time_is_kept(assigned_first: bool) -> None:
    clock = Clock()
    member = GroupMember()
    source, made = source_of(member, GroupMember(), clock=clock)
    if assigned_first:
        member.assign([0])
        member.revoke()
    clock.now += REJOIN_DEADLINE_SECONDS / 2
    member.assign([0, 1, 2])

    clock.now += 10 * REJOIN_DEADLINE_SECONDS
    source.poll(10, 0)

    assert made == [member]


def test_a_replaced_consumers_last_revoke_does_not_put_its_successor_outside_the_group() -> None:
    clock = Clock()
    stuck, fresh = GroupMember(), GroupMember()
    source, made = source_of(stuck, fresh, GroupMember(), clock=clock)
    stuck.revoke()
    clock.now += REJOIN_DEADLINE_SECONDS + 1
    source.poll(10, 0)
    fresh.assign([0, 1, 2])

    stuck.revoke()  # its close, on its own thread, serves one more rebalance callback
    clock.now += 10 * REJOIN_DEADLINE_SECONDS
    source.poll(10, 0)

    assert made == [stuck, fresh]
