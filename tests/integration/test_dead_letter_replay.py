"""Poison message → parked (with its aggregate's later events) → fixed → replayed, for real:
Kafka, PostgreSQL, SMTP, and the operators' commands typed as `python -m projector|mailer dlq`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from confluent_kafka import Producer

from contracts.events import PublicEvent, encode_event
from runtime.kafka import producer_config
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.digest import (
    ReadUser,
    Task,
    digest_system,
    mailer_settings,
    processed_event_ids,
    running_mailer,
)
from tests.support.events import History
from tests.support.infra import consume_all, process_env
from tests.support.read_side import ROOT, projector_env, running_projector, snapshot, wait_until
from tests.support.smtp import SmtpServer, running_smtp_server

pytestmark = pytest.mark.integration


def produce(kafka: KafkaSettings, events: list[PublicEvent | bytes], key: bytes) -> None:
    """Raw messages on the events topic, one key (one partition), in this order."""
    producer = Producer(producer_config(kafka))
    for event in events:
        value = event if isinstance(event, bytes) else encode_event(event)
        producer.produce(kafka.KAFKA_TOPIC, key=key, value=value)
    assert producer.flush(20) == 0


def dlq(env: dict[str, str], service: str, *args: str, stdin: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", service, "dlq", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def parked(env: dict[str, str], service: str) -> list[dict[str, Any]]:
    done = dlq(env, service, "list", "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_a_poison_event_parks_its_task_in_order_until_fixed_and_replayed_while_others_flow(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    group = "projector-park"
    env = projector_env(read_db, kafka_settings, group)
    h, user, poisoned, other = History(), uuid4(), uuid4(), uuid4()
    # PostgreSQL text cannot hold NUL ("\u0000" in the JSON): the read model refuses this title.
    created = h.create(user, poisoned, "bad \x00 title")
    renamed = h.rename(user, poisoned, "renamed after the fix")
    stream: list[PublicEvent | bytes] = [
        h.register(user),
        created,
        h.create(user, other, "other task"),
        renamed,
        h.complete(user, other),
    ]
    with running_projector(read_db, kafka_settings, group=group):
        produce(kafka_settings, stream, key=str(user).encode())
        wait_until(
            lambda: [(t[2], t[3]) for t in snapshot(read_db)["tasks"]] == [("other task", True)],
            what="the other task to flow past the poisoned one",
        )
        wait_until(lambda: len(parked(env, "projector")) == 2, what="both events parked")
        rows = parked(env, "projector")
        assert [(r["aggregate_id"], r["event_type"], r["kind"]) for r in rows] == [
            (str(poisoned), "task.created", "poison"),
            (str(poisoned), "task.renamed", "parked"),
        ]
        assert rows[0]["offset"] < rows[1]["offset"]
        assert "NUL" in rows[0]["reason"] and "parked behind" in rows[1]["reason"]
        table = dlq(env, "projector", "list")
        assert "task.created" in table.stdout and "2 parked message(s)" in table.stdout
        status = subprocess.run(
            [sys.executable, "-m", "projector", "status", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert json.loads(status.stdout)["parked"] == 2

        # Not fixed yet: the replay still fails, says why, keeps both parked, exits non-zero.
        failed = dlq(env, "projector", "replay", "--aggregate", str(poisoned), "--no-progress")
        assert failed.returncode == 1 and "NUL" in failed.stdout
        assert len(parked(env, "projector")) == 2

        # The operator's fix: the title without the NUL, written into the parked message.
        fixed = created.model_copy(update={"title": "bad title, fixed"})
        where = ["--topic", rows[0]["topic"], "--partition", str(rows[0]["partition"])]
        edit = dlq(
            env, "projector", "fix", *where, "--offset", str(rows[0]["offset"]),
            "--value-file", "-", stdin=encode_event(fixed).decode(),
        )  # fmt: skip
        assert edit.returncode == 0, edit.stderr

        replay = dlq(env, "projector", "replay", "--aggregate", str(poisoned))
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "replayed 2 message(s); 0 still parked" in replay.stdout
        assert parked(env, "projector") == []
        tasks = {t[0]: t for t in snapshot(read_db)["tasks"]}
        assert (tasks[poisoned][2], tasks[poisoned][6]) == ("renamed after the fix", 2)

        # No longer parked: the task's next event is applied live; a second replay is a no-op.
        produce(kafka_settings, [h.complete(user, poisoned)], key=str(user).encode())
        wait_until(
            lambda: {t[0]: t[3] for t in snapshot(read_db)["tasks"]}.get(poisoned) is True,
            what="the task's next event to be applied live",
        )
    again = dlq(env, "projector", "replay", "--all", "--json", "--no-progress")
    assert again.returncode == 0 and json.loads(again.stdout)["replayed"] == 0

    dead = consume_all(
        kafka_settings, topic=kafka_settings.KAFKA_DLQ_TOPIC, until=lambda ms: len(ms) >= 2
    )
    kinds = sorted(dict(m.headers())["dlq.kind"] for m in dead)
    assert kinds == [b"parked", b"poison"]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


def test_a_refused_digest_is_parked_then_replayed_once_the_smtp_server_accepts_it(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings, smtp: SmtpServer
) -> None:
    smtp.reject_recipient("bob@example.com")
    settings = mailer_settings(smtp)
    with digest_system(db_settings, kafka_settings) as system:
        system.add_users(
            [
                ReadUser("ada@example.com", [Task("a task")]),
                ReadUser("bob@example.com", [Task("b task")]),
            ]
        )
        system.run_batch(date(2026, 11, 23))
        bob = next(e for e in system.digest_events(2) if e.email == "bob@example.com")
        values = {k: str(v) for k, v in settings.model_dump().items() if v is not None}
        env = process_env(db_settings, kafka_settings, **values)
        with running_mailer(db_settings, kafka_settings, settings):
            smtp.wait_for(1)
            wait_until(lambda: len(parked(env, "mailer")) == 1, what="bob's digest parked")
        [row] = parked(env, "mailer")
        assert (row["aggregate_id"], row["kind"]) == (str(bob.digest_id), "poison")
        assert "SMTP 550" in row["reason"]
        assert bob.event_id not in processed_event_ids(db_settings)

        still = dlq(env, "mailer", "replay", "--all", "--no-progress")
        assert still.returncode == 1 and "550" in still.stdout
        assert len(parked(env, "mailer")) == 1

        smtp.accept_recipient("bob@example.com")
        replay = dlq(env, "mailer", "replay", "--aggregate", str(bob.digest_id))
        assert replay.returncode == 0, replay.stdout + replay.stderr
        again = dlq(env, "mailer", "replay", "--all", "--no-progress")
        assert again.returncode == 0

    received = smtp.settle(quiet=1.0)
    assert sorted(r.rcpt_tos[0] for r in received) == ["ada@example.com", "bob@example.com"]
    assert len(smtp.to("bob@example.com")) == 1, "exactly one email after the replay"
    assert parked(env, "mailer") == []
    assert bob.event_id in processed_event_ids(db_settings)


def test_parked_rows_survive_in_postgresql_with_their_original_headers(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with running_projector(read_db, kafka_settings, group="projector-headers"):
        producer = Producer(producer_config(kafka_settings))
        producer.produce(
            kafka_settings.KAFKA_TOPIC, key=b"k", value=b"garbage", headers={"x": b"1"}
        )
        assert producer.flush(20) == 0
        env = projector_env(read_db, kafka_settings, "projector-headers")
        wait_until(lambda: len(parked(env, "projector")) == 1, what="the garbage parked")
    with psycopg.connect(read_db.conninfo) as conn:
        row = conn.execute("SELECT key, value, headers, kind FROM dead_letters").fetchone()
    assert row is not None
    assert (bytes(row[0]), bytes(row[1]), row[2], row[3]) == (
        b"k",
        b"garbage",
        [["x", "MQ=="]],
        "poison",
    )


def test_dlq_commands_without_a_database_say_so_in_one_line_and_exit_2(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    nowhere = db_settings.model_copy(update={"POSTGRES_PORT": 23001})  # nothing listens there
    env = projector_env(nowhere, kafka_settings, "projector")
    done = dlq(env, "projector", "list")
    assert done.returncode == 2
    assert done.stderr.startswith("database unavailable:") and "Traceback" not in done.stderr
