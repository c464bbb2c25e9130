"""A consumer (projector, mailer) sends its offsets to Kafka at most every
KAFKA_OFFSET_COMMIT_INTERVAL_SECONDS instead of after every batch (a broker request per batch was
a share of the freshness path's CPU); offsets held back meanwhile still go out once due, even
when no message follows, and before a revoke or a close hands the partitions to someone else."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import TopicPartition

from consuming.source import KafkaSource
from runtime.settings import KafkaSettings
from tests.unit.test_kafka_rejoin import Clock, GroupMember


class CommitRecorder(GroupMember):
    """Records what each commit sent and how long each poll was allowed to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[tuple[str, int], int]] = []
        self.waits: list[float] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        super().commit(offsets=offsets, asynchronous=asynchronous)
        self.sent.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def consume(self, n: int, timeout: float) -> list[Any]:
        if n == 1:
            self.waits.append(timeout)
        return super().consume(n, timeout)


def source_on(member: CommitRecorder, clock: Clock, interval: float = 0.1) -> KafkaSource:
    settings = KafkaSettings(KAFKA_OFFSET_COMMIT_INTERVAL_SECONDS=interval)
    return KafkaSource(settings, "projector", consumer_factory=lambda _c: member, clock=clock)


def test_offsets_arriving_within_the_interval_are_held_back_and_sent_together_once_due() -> None:
    clock, member = Clock(), CommitRecorder()
    source = source_on(member, clock)

    source.commit({("events", 0): 5})
    clock.now += 0.03
    source.commit({("events", 0): 6})
    source.commit({("events", 1): 3})
    assert member.sent == [{("events", 0): 5}]

    clock.now += 0.07
    source.commit({("events", 0): 8})
    assert member.sent == [{("events", 0): 5}, {("events", 0): 8, ("events", 1): 3}]
    assert all(member.commits)  # every one asynchronous


def test_held_back_offsets_go_out_from_the_next_poll_once_due_even_without_new_messages() -> None:
    clock, member = Clock(), CommitRecorder()
    source = source_on(member, clock)
    source.commit({("events", 0): 5})
    source.commit({("events", 0): 6})

    clock.now += 0.04
    source.poll(10, 0.5)
    # it waited for a message no longer than until they were due
    assert member.waits[-1] == pytest.approx(0.06)
    assert member.sent == [{("events", 0): 5}]

    clock.now += 0.07
    source.poll(10, 0.5)
    assert member.sent == [{("events", 0): 5}, {("events", 0): 6}]
    assert member.waits[-1] == 0.5  # nothing held back any more: the full poll timeout


def test_a_revoke_sends_the_held_back_offsets_before_the_partitions_move() -> None:
    clock, member = Clock(), CommitRecorder()
    source = source_on(member, clock)
    member.assign([0, 1, 2])
    source.commit({("events", 0): 5})
    source.commit({("events", 2): 9})

    member.revoke()

    assert member.sent == [{("events", 0): 5}, {("events", 2): 9}]


def test_closing_sends_the_held_back_offsets_first() -> None:
    clock, member = Clock(), CommitRecorder()
    source = source_on(member, clock)
    source.commit({("events", 0): 5})
    source.commit({("events", 0): 6})

    source.close()

    assert member.sent == [{("events", 0): 5}, {("events", 0): 6}]
    assert member.closed


def test_an_interval_of_zero_sends_the_offsets_after_every_batch() -> None:
    clock, member = Clock(), CommitRecorder()
    source = source_on(member, clock, interval=0)

    for offset in (5, 6, 7):
        source.commit({("events", 0): offset})

    assert member.sent == [{("events", 0): 5}, {("events", 0): 6}, {("events", 0): 7}]
