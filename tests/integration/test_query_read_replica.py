"""The query API reading from a real PostgreSQL streaming replica (infra/postgres.sh replica, the
same binaries): with X-Min-Position a query sees its own write every time, because it waits until
the *replica* shows the position; with replay paused it waits, and says X-Stale only at its bound.

Writes go the whole way: command API -> store (primary) -> relay -> Kafka -> projector (primary)
-> WAL -> replica. The private primary runs with synchronous_commit=off (throwaway data), so its
commits reach the replica up to a WAL-writer cycle (200 ms) after the projector's NOTIFY: answering
on the notification alone would be stale often, not just in a rare race. The first test also runs
with synchronous_commit=on (as in production), for the figures of docs/scaling.md."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from http_api.auth import verify_token
from query_api.bootstrap import create_app
from query_api.settings import QueryApiSettings
from runtime.settings import DatabaseSettings, KafkaSettings, auth_settings
from tests.support.private_infra import PrivateReplica, private_postgres, private_replica
from tests.support.read_side import migrate, running_projector, wait_until
from tests.support.system import auth, command_client, register_and_login, running_relay, store_for

pytestmark = pytest.mark.integration

PRIMARY_PORT = 29054
REPLICA_PORT = 29055


@dataclass
class Pipeline:
    primary: DatabaseSettings
    replica: PrivateReplica
    commands: TestClient
    queries: TestClient  # reads from the replica
    on_primary: TestClient  # the same query API reading from the primary (the baseline)


def query_client(primary: DatabaseSettings, timeout: float, **settings: Any) -> TestClient:
    values = QueryApiSettings(READ_YOUR_WRITES_TIMEOUT_SECONDS=timeout, **settings)
    return TestClient(create_app(db=primary, settings=values))


@contextmanager
def replicated_pipeline(
    kafka: KafkaSettings, timeout: float, synchronous_commit: bool = False
) -> Iterator[Pipeline]:
    with private_postgres(PRIMARY_PORT) as postgres:
        primary = postgres.settings
        migrate(primary)
        if synchronous_commit:  # for every session opened from now on (the server has it off)
            with psycopg.connect(primary.conninfo, autocommit=True) as conn:
                name = sql.Identifier(primary.POSTGRES_DB)
                conn.execute(sql.SQL("alter database {} set synchronous_commit = on").format(name))
        replica_settings = {"QUERY_REPLICA_HOST": "127.0.0.1", "QUERY_REPLICA_PORT": REPLICA_PORT}
        with (
            private_replica(postgres, REPLICA_PORT) as replica,
            store_for(primary) as store,
            command_client(store, primary) as commands,
            running_relay(store, primary, kafka),
            running_projector(primary, kafka, group="projector-replica"),
            query_client(primary, timeout, **replica_settings) as queries,
            query_client(primary, timeout) as on_primary,
        ):
            assert queries.app.state.database.POSTGRES_PORT == REPLICA_PORT  # type: ignore[attr-defined]
            yield Pipeline(primary, replica, commands, queries, on_primary)


def position(response: Any) -> str:
    value = response.headers["X-Event-Position"]
    assert value.isdigit()
    return str(value)


def applied_on_primary(db: DatabaseSettings, user_id: UUID, wanted: int) -> bool:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "select position from user_positions where user_id = %s", (user_id,)
        ).fetchone()
    return row is not None and int(row[0]) >= wanted


def me(token: str) -> UUID:
    return verify_token(token, auth_settings())


def created_and_applied_on_primary(p: Pipeline, token: str, title: str) -> tuple[str, int]:
    """A task created through the command API: its id, and its position once the projector has
    applied it on the primary (whatever the replica has replayed)."""
    created = p.commands.post("/tasks", json={"title": title}, headers=auth(token))
    task_id, wanted = created.json()["id"], int(position(created))
    user_id = me(token)
    wait_until(lambda: applied_on_primary(p.primary, user_id, wanted), 30, "projector")
    return str(task_id), wanted


@pytest.mark.parametrize("synchronous_commit", [False, True], ids=["async-commit", "sync-commit"])
def test_reads_from_the_replica_with_x_min_position_see_their_own_write_every_time(
    kafka_settings: KafkaSettings, synchronous_commit: bool
) -> None:
    waits: dict[str, list[float]] = {"replica": [], "primary": []}
    with replicated_pipeline(kafka_settings, 5.0, synchronous_commit) as p:
        token = register_and_login(p.commands, "ada@example.com")
        # Not measured: the first event also waits for the projector to join its group.
        first = p.commands.post("/tasks", json={"title": "warm-up"}, headers=auth(token))
        wait = {**auth(token), "X-Min-Position": position(first)}
        assert "X-Stale" not in p.on_primary.get("/tasks", headers=wait).headers
        p.commands.delete(f"/tasks/{first.json()['id']}", headers=auth(token))
        for i in range(40):
            reader, name = (p.queries, "replica") if i % 2 == 0 else (p.on_primary, "primary")
            created = p.commands.post("/tasks", json={"title": f"task {i}"}, headers=auth(token))
            assert created.status_code == 201
            task_id = created.json()["id"]
            started = time.monotonic()
            wait = {**auth(token), "X-Min-Position": position(created)}
            seen = reader.get(f"/tasks/{task_id}", headers=wait)
            waits[name].append(time.monotonic() - started)
            assert seen.status_code == 200, seen.text
            assert "X-Stale" not in seen.headers
            assert seen.json()["title"] == f"task {i}"

            done = p.commands.patch(f"/tasks/{task_id}", json={"done": True}, headers=auth(token))
            wait = {**auth(token), "X-Min-Position": position(done)}
            listed = p.queries.get("/tasks?done=true&limit=1", headers=wait)
            assert "X-Stale" not in listed.headers
            assert listed.json()["items"][0]["id"] == task_id
            assert listed.json()["items"][0]["version"] == 2

            if i % 5 == 4:
                deleted = p.commands.delete(f"/tasks/{task_id}", headers=auth(token))
                wait = {**auth(token), "X-Min-Position": position(deleted)}
                assert p.queries.get(f"/tasks/{task_id}", headers=wait).status_code == 404

        stats = p.queries.get("/me", headers={**auth(token), "X-Min-Position": position(done)})
        assert stats.json()["stats"] == {"total": 32, "done": 32, "undone": 0}
    for name, values in waits.items():
        print(
            f"\nsynchronous_commit={synchronous_commit}: read-your-writes wait, reading from"
            f" the {name}: median"
            f" {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"
            f" ({' '.join(f'{v * 1000:.0f}' for v in values)})"
        )


def test_with_replay_paused_a_read_waits_for_the_replica_and_answers_fresh_once_it_resumes(
    kafka_settings: KafkaSettings,
) -> None:
    with replicated_pipeline(kafka_settings, timeout=10.0) as p:
        token = register_and_login(p.commands, "grace@example.com")
        with p.replica.replay_paused():
            task_id, wanted = created_and_applied_on_primary(p, token, "late")
            # Plain reads come from the replica, which does not have it yet.
            assert p.queries.get(f"/tasks/{task_id}", headers=auth(token)).status_code == 404
            assert p.on_primary.get(f"/tasks/{task_id}", headers=auth(token)).status_code == 200

            answers: list[Any] = []
            headers = {**auth(token), "X-Min-Position": str(wanted)}
            reader = threading.Thread(
                target=lambda: answers.append(p.queries.get(f"/tasks/{task_id}", headers=headers))
            )
            started = time.monotonic()
            reader.start()
            time.sleep(1.5)
            assert reader.is_alive() and not answers, "it waits rather than answering stale"
        resumed = time.monotonic()
        reader.join(timeout=10)
        answered = time.monotonic()
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert "X-Stale" not in answer.headers
    assert answer.json()["title"] == "late"
    print(
        f"\nreplay paused {resumed - started:.1f} s: the read waited, then answered"
        f" {(answered - resumed) * 1000:.0f} ms after replay resumed"
    )
    assert answered - resumed < 2.0, "answered as soon as the replica replayed, not at the bound"


def test_with_replay_paused_past_the_bound_the_answer_is_marked_stale_and_only_then(
    kafka_settings: KafkaSettings,
) -> None:
    bound = 1.0
    with replicated_pipeline(kafka_settings, timeout=bound) as p:
        token = register_and_login(p.commands, "linus@example.com")
        with p.replica.replay_paused():
            task_id, wanted = created_and_applied_on_primary(p, token, "held")
            headers = {**auth(token), "X-Min-Position": str(wanted)}
            started = time.monotonic()
            stale = p.queries.get(f"/tasks/{task_id}", headers=headers)
            elapsed = time.monotonic() - started
        fresh = p.queries.get(f"/tasks/{task_id}", headers=headers)
    assert stale.status_code == 404 and stale.headers["X-Stale"] == "true"
    assert bound <= elapsed < bound + 1.5
    assert fresh.status_code == 200 and "X-Stale" not in fresh.headers
    assert fresh.json()["title"] == "held"
