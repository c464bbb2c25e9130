"""Two projector and two mailer processes (`python -m projector consume`, `python -m mailer`), each
pair in its consumer group, under load; one of each is SIGKILLed: the survivor takes over the dead
one's partitions, the read tables end exactly as the store says, and no digest is emailed twice.

Real parts: PostgreSQL (a fresh database), the shared Kafka broker (fresh topics), an SMTP sink, the
relay as a process too. The takeover time is measured from the kill to the survivor owning every
partition, and to the first offset committed on a partition the dead process had.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from event_store.application import DigestDetails, TodoStore
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.chaos_checks import judge_mail
from tests.support.infra import PARTITIONS
from tests.support.processes import worker_env
from tests.support.read_side import fold, migrate, store_events, wait_for_tables, wait_until
from tests.support.services import Service, running, service
from tests.support.smtp import running_smtp_server
from tests.support.store_load import StoreLoad
from tests.support.system import store_for

pytestmark = pytest.mark.integration

ALL = set(range(PARTITIONS))
FIRST_DAY = date(2026, 1, 1)


class Load(StoreLoad):
    """Task commands and digest requests straight into the store, from a thread, until stopped:
    every few commands one user's digest for a new day (a new email to send)."""

    def __init__(self, store: TodoStore, users: int) -> None:
        super().__init__(store, interval=0.01)
        self.users = [
            (store.register_user(f"load{i}@example.com", "h").aggregate.id, f"load{i}@example.com")
            for i in range(users)
        ]
        self.digests = 0

    def step(self, n: int) -> None:
        user, email = self.users[n % len(self.users)]
        task = self.store.create_task(user, f"task {n}").aggregate
        if n % 3 == 0:
            self.store.update_task(user, task.id, done=True)
        if n % 7 == 0:
            self.store.delete_task(user, task.id)
        if n % 4 == 0:
            day = FIRST_DAY + timedelta(days=n // len(self.users))
            self.store.request_daily_digest(day, DigestDetails(user, email, 1, 0, [f"task {n}"]))
            self.digests += 1
        self.commands += 1


@dataclass
class Group:
    """One consumer group and its two processes."""

    id: str
    processes: list[Service]
    killed: Service | None = None
    orphaned: set[int] = field(default_factory=set)  # the killed process's partitions
    offsets_at_kill: dict[int, int] = field(default_factory=dict)
    reassigned_after: float | None = None  # s from the kill until the survivor owns them all
    resumed_after: float | None = None  # s until an orphaned partition's offset moved on


def assignment(admin: AdminClient, group: str) -> dict[str, set[int]]:
    """Member's group.instance.id (it holds the pid, runtime.kafka.instance_id) -> partitions."""
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        str(m.group_instance_id): {tp.partition for tp in m.assignment.topic_partitions}
        for m in described.members
    }


def owner(members: dict[str, set[int]], process: Service) -> set[int]:
    assert process.process is not None
    pid = f"-{process.process.pid}-"
    return next((parts for member, parts in members.items() if pid in member), set())


def committed(kafka: KafkaSettings, group: str) -> dict[int, int]:
    """The group's committed offsets (read without joining it)."""
    reader = Consumer({"bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS, "group.id": group})
    try:
        partitions = [TopicPartition(kafka.KAFKA_TOPIC, p) for p in range(PARTITIONS)]
        return {tp.partition: tp.offset for tp in reader.committed(partitions, timeout=10)}
    finally:
        reader.close()


def split_in_two(admin: AdminClient, group: Group) -> bool:
    members = assignment(admin, group.id)
    parts = [owner(members, p) for p in group.processes]
    return len(members) == 2 and all(parts) and parts[0] | parts[1] == ALL


def kill_one(admin: AdminClient, kafka: KafkaSettings, group: Group) -> None:
    group.killed = group.processes[0]
    group.orphaned = owner(assignment(admin, group.id), group.killed)
    group.killed.kill()
    group.offsets_at_kill = committed(kafka, group.id)  # the dead commit nothing more


def watch_takeover(admin: AdminClient, kafka: KafkaSettings, groups: list[Group]) -> None:
    killed_at = time.monotonic()
    deadline = killed_at + 90
    while time.monotonic() < deadline:
        for g in groups:
            survivor = g.processes[1]
            if g.reassigned_after is None:
                members = assignment(admin, g.id)
                if len(members) == 1 and owner(members, survivor) == ALL:
                    g.reassigned_after = time.monotonic() - killed_at
            if g.resumed_after is None:
                now = committed(kafka, g.id)
                if any(now[p] > g.offsets_at_kill.get(p, -1) for p in g.orphaned):
                    g.resumed_after = time.monotonic() - killed_at
        if all(g.reassigned_after is not None and g.resumed_after is not None for g in groups):
            return
        time.sleep(0.1)
    raise AssertionError(f"no takeover within 90 s: {groups}")


def test_killing_one_of_two_projectors_and_one_of_two_mailers_under_load_loses_and_repeats_nothing(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    db = db_settings
    migrate(db)
    admin = AdminClient({"bootstrap.servers": kafka_settings.KAFKA_BOOTSTRAP_SERVERS})
    with running_smtp_server() as smtp, store_for(db) as store:
        env = worker_env(smtp, PROJECTOR_GROUP_ID="projectors", MAILER_GROUP_ID="mailers")

        def instance(name: str, n: int) -> Service:
            (tmp_path / f"{name}-{n}").mkdir()
            return service(name, db, kafka_settings, tmp_path / f"{name}-{n}", **env)

        projectors = Group("projectors", [instance("projector", 1), instance("projector", 2)])
        mailers = Group("mailers", [instance("mailer", 1), instance("mailer", 2)])
        relay = instance("relay", 1)
        load = Load(store, users=24)
        with running(relay, *projectors.processes, *mailers.processes):
            load.start()
            try:
                for g in (projectors, mailers):
                    wait_until(partial(split_in_two, admin, g), 60, f"{g.id} split in two")
                time.sleep(2)  # both members of each group busy
                head_at_kill = store.head_position()
                for g in (projectors, mailers):
                    kill_one(admin, kafka_settings, g)
                watch_takeover(admin, kafka_settings, [projectors, mailers])
                head_at_takeover = store.head_position()
                time.sleep(2)  # and load on the survivors alone
            finally:
                load.stop()
            events = store_events(store)
            wait_for_tables(db, fold(events), timeout=120)
            digests = sum(1 for e in events if e.type == "email.daily_digest.requested")
            smtp.wait_for(digests, timeout=120)
            verdict = judge_mail(events, smtp.settle(quiet=2.0))
            survivors = [projectors.processes[1].alive, mailers.processes[1].alive]

    for g in (projectors, mailers):
        print(
            f"\n{g.id}: killed the owner of partitions {sorted(g.orphaned)}; the survivor owned"
            f" all {PARTITIONS} after {g.reassigned_after:.1f} s, committed on them after"
            f" {g.resumed_after:.1f} s"
        )
    print(
        f"load: {load.commands} commands, {load.digests} digests; {head_at_takeover - head_at_kill}"
        f" store events recorded during the takeover; {verdict.resent_identical} identical"
        " re-sends (the killed mailer's SMTP-accepted, not yet recorded window)"
    )
    assert survivors == [True, True]
    assert projectors.orphaned and mailers.orphaned, "each killed process owned partitions"
    assert head_at_takeover > head_at_kill, "the kill happened under load"
    assert digests == load.digests > 0
    assert verdict.mailed == digests and not verdict.unmailed
    assert not verdict.emailed_twice, verdict.emailed_twice[:5]
    for g in (projectors, mailers):
        assert g.reassigned_after is not None and g.reassigned_after < 30
