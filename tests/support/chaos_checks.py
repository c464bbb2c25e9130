"""What the fault-injection run is judged on, read from the observable parts only: the event store
(through TodoStore), the Kafka topic, the read tables and the SMTP sink."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from confluent_kafka import Consumer, TopicPartition

from contracts.events import (
    DailyDigestRequested,
    PublicEvent,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskEvent,
    TaskRenamed,
    TaskReopened,
    decode_event,
)
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.chaos_workload import Tally
from tests.support.infra import PARTITIONS
from tests.support.smtp import Received

Row = tuple[Any, ...]  # (id, user_id, title, done, deleted, version)


def task_states(events: list[PublicEvent]) -> dict[UUID, Row]:
    """Every task's state after the store's events (a fold of our own, not the projector's)."""
    state: dict[UUID, list[Any]] = {}
    for e in events:
        if isinstance(e, TaskCreated):
            state[e.task_id] = [e.task_id, e.user_id, e.title, False, False, e.aggregate_version]
            continue
        if not isinstance(e, TaskEvent):
            continue
        row = state[e.task_id]
        row[5] = e.aggregate_version
        if isinstance(e, TaskRenamed):
            row[2] = e.title
        elif isinstance(e, TaskCompleted | TaskReopened):
            row[3] = isinstance(e, TaskCompleted)
        else:  # deleted or restored
            row[4] = isinstance(e, TaskDeleted)
    return {k: tuple(v) for k, v in state.items()}


@dataclass
class StoreVerdict:
    acked_missing: list[str] = field(default_factory=list)  # acked commands without their event
    model_mismatch: list[str] = field(default_factory=list)  # certain tasks the store disagrees on
    phantoms: list[UUID] = field(default_factory=list)  # tasks nobody created (or knew of)
    unknown_happened: int = 0
    unknown_not_happened: int = 0
    expected: dict[UUID, Row] = field(default_factory=dict)  # what the read tables must hold


def judge_store(tally: Tally, events: list[PublicEvent]) -> StoreVerdict:
    verdict = StoreVerdict()
    by_position = {e.position: e for e in events}
    for a in tally.acked:
        e = by_position.get(a.position)
        if e is None or e.type != a.event_type or getattr(e, "task_id", None) != a.aggregate_id:
            verdict.acked_missing.append(f"{a} → {e!r}"[:300])
    states = task_states(events)
    created = {(e.user_id, e.title): e.task_id for e in events if isinstance(e, TaskCreated)}
    known = set(tally.tasks)
    for user_id, title in tally.unknown_creates:
        task_id = created.get((user_id, title))
        if task_id is None:
            verdict.unknown_not_happened += 1
        else:
            verdict.unknown_happened += 1
            known.add(task_id)
    for task_id, task in tally.tasks.items():
        if task_id not in tally.uncertain and states.get(task_id) != task.row():
            verdict.model_mismatch.append(f"model {task.row()} store {states.get(task_id)}")
    verdict.phantoms = [t for t in states if t not in known]
    verdict.expected = states
    return verdict


def table_rows(db: DatabaseSettings) -> dict[UUID, Row]:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        rows = conn.execute("select id, user_id, title, done, deleted, version from tasks")
        return {r[0]: tuple(r) for r in rows}


def wait_for_tables(db: DatabaseSettings, expected: dict[UUID, Row], timeout: float) -> list[str]:
    """Until the tasks table equals `expected`; returns the differences left at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        actual = table_rows(db)
        if actual == expected:
            return []
        if time.monotonic() > deadline:
            ids = set(actual) | set(expected)
            return [f"{i}: table {actual.get(i)} store {expected.get(i)}"
                    for i in ids if actual.get(i) != expected.get(i)]  # fmt: skip
        time.sleep(0.5)


@dataclass
class KafkaVerdict:
    messages: int = 0
    missing: set[int] = field(default_factory=set)  # public store positions never seen
    redeliveries: int = 0  # positions seen more than once (at-least-once: allowed)
    order_violations: list[str] = field(default_factory=list)
    split_users: list[UUID] = field(default_factory=list)  # users seen on several partitions


def judge_kafka(kafka: KafkaSettings, expected: set[int], timeout: float) -> KafkaVerdict:
    """Read the whole topic (each message decoded once) until every expected position is seen."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": "chaos-judge",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(kafka.KAFKA_TOPIC, p, 0) for p in range(PARTITIONS)])
    seen: Counter[int] = Counter()
    per_user: dict[UUID, list[int]] = defaultdict(list)  # first arrivals, in arrival order
    partitions: dict[UUID, set[int]] = defaultdict(set)
    verdict = KafkaVerdict()
    deadline = time.monotonic() + timeout
    try:
        while not expected <= seen.keys() and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    continue
                event = decode_event(m.value() or b"")
                verdict.messages += 1
                partitions[event.user_id].add(m.partition() or 0)
                if seen[event.position] == 0:
                    per_user[event.user_id].append(event.position)
                seen[event.position] += 1
    finally:
        consumer.close()
    verdict.missing = expected - seen.keys()
    verdict.redeliveries = sum(n - 1 for n in seen.values())
    for user, positions in per_user.items():
        if positions != sorted(positions):
            bad = next(i for i in range(1, len(positions)) if positions[i] < positions[i - 1])
            verdict.order_violations.append(
                f"user {user}: {positions[bad - 1]} before {positions[bad]}"
            )
    verdict.split_users = [u for u, ps in partitions.items() if len(ps) > 1]
    return verdict


@dataclass
class MailVerdict:
    digests: int = 0  # digest events in the store
    mailed: int = 0  # digests with at least one email
    unmailed: list[UUID] = field(default_factory=list)
    resent_identical: int = 0  # extra copies with the same Message-ID and bytes (crash window)
    emailed_twice: list[str] = field(default_factory=list)  # a digest under two Message-IDs, etc.


def judge_mail(events: list[PublicEvent], received: list[Received]) -> MailVerdict:
    digests = {e.digest_id: e for e in events if isinstance(e, DailyDigestRequested)}
    copies: dict[str, list[Received]] = defaultdict(list)
    for r in received:
        copies[str(r.message["X-Digest-Id"])].append(r)
    verdict = MailVerdict(digests=len(digests))
    verdict.unmailed = [d for d in digests if str(d) not in copies]
    verdict.mailed = len(digests) - len(verdict.unmailed)
    for digest_id, mails in copies.items():
        ids = {m.message_id for m in mails}
        if UUID(digest_id) not in digests:
            verdict.emailed_twice.append(f"{digest_id}: emailed but not in the store")
        elif len(ids) > 1 or any(m.raw != mails[0].raw for m in mails):
            verdict.emailed_twice.append(f"{digest_id}: {len(mails)} different emails")
        else:
            verdict.resent_identical += len(mails) - 1
    return verdict


@dataclass
class ChaosReport:
    """A run's answer: its figures, and every problem found (none: the verdict is OK)."""

    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"  {k:<28} {v}" for k, v in self.figures.items()]
        verdict = "OK" if not self.problems else f"{len(self.problems)} PROBLEM(S)"
        return "\n".join(["chaos run:", *lines, f"verdict: {verdict}", *self.problems])
