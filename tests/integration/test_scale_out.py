"""More than one of a process: two command API processes behind the gateway, and a relay with a hot
standby. The guarantees (contiguous, complete positions in commit order; per-user order; nothing
lost) must hold exactly as with one."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from contracts.events import PublicEvent
from event_store.public import PUBLIC_TOPICS
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support import processes
from tests.support.gateway import private_gateway
from tests.support.infra import consume_events, process_env
from tests.support.processes import python_process
from tests.support.read_side import migrate
from tests.support.services import wait_for_http
from tests.support.smtp import free_port
from tests.support.system import running_relay, store_for

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.integration
WRITERS = 8
TASKS_PER_WRITER = 30


@contextmanager
def command_api_process(
    db: DatabaseSettings, kafka: KafkaSettings, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    env = process_env(db, kafka, COMMAND_API_PORT=str(port), ENVIRONMENT="test")
    with python_process(["-m", "command_api"], env) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/health")
        yield proc


def register(http: httpx.Client, email: str) -> dict[str, str]:
    credentials = {"email": email, "password": "correct horse battery"}
    assert http.post("/api/auth/register", json=credentials).status_code == 201
    login = http.post("/api/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_two_command_api_processes_behind_the_gateway_keep_positions_contiguous_and_complete(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    migrate(db_settings)
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        processes = [
            stack.enter_context(command_api_process(db_settings, kafka_settings, p)) for p in ports
        ]
        gateway = stack.enter_context(private_gateway([f"127.0.0.1:{p}" for p in ports]))
        url, access_log = gateway.url, gateway.access_log
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        users = [register(http, f"writer{i}-{uuid.uuid4().hex[:6]}@example.com") for i in range(8)]
        answers: list[int] = []

        def write(headers: dict[str, str]) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for n in range(TASKS_PER_WRITER):
                    created = client.post("/api/tasks", json={"title": f"t{n}"}, headers=headers)
                    answers.append(created.status_code)

        threads = [threading.Thread(target=write, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

        # One process down: the gateway sends the next commands to the other one.
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        after_kill = [
            http.post("/api/tasks", json={"title": "still here"}, headers=users[0]).status_code
            for _ in range(10)
        ]
        served_by = {
            line.split(" up=")[1].split()[0]
            for line in access_log.read_text().splitlines()
            if "POST /api/tasks" in line and " 201 " in line
        }

    assert answers == [201] * (WRITERS * TASKS_PER_WRITER)
    assert after_kill == [201] * 10
    assert served_by >= {f"127.0.0.1:{p}" for p in ports}, "both processes took commands"

    with store_for(db_settings) as store:
        expected = {
            n.id for n in store.recorder.select_notifications(1, 1_000_000, topics=PUBLIC_TOPICS)
        }
        with running_relay(store, db_settings, kafka_settings):
            events = consume_events(
                kafka_settings, until=lambda es: expected <= {e.position for e in es}
            )
    assert_contiguous_complete_and_ordered(events, expected)


def assert_contiguous_complete_and_ordered(events: list[PublicEvent], expected: set[int]) -> None:
    first_positions = sorted({e.position for e in events})
    assert set(first_positions) == expected, "every public position on Kafka, nothing else"
    tasks = sorted({e.position for e in events if e.type == "task.created"})
    assert tasks == list(range(tasks[0], tasks[0] + len(tasks))), "task positions contiguous"
    # At-least-once: a relay killed before its checkpoint re-sends a batch; the order that matters
    # is that of first arrivals.
    by_user: dict[uuid.UUID, list[int]] = {}
    for e in events:
        if e.position not in by_user.setdefault(e.user_id, []):
            by_user[e.user_id].append(e.position)
    for positions in by_user.values():
        assert positions == sorted(positions), "a user's events first arrive in store order"


def relay_process(
    db: DatabaseSettings, kafka: KafkaSettings, log: Path, stack: ExitStack
) -> subprocess.Popen[str]:
    """A relay whose log goes to a file (a pipe nobody reads would block it once full)."""
    popen = {"stderr": stack.enter_context(log.open("w")), "text": True}
    return stack.enter_context(
        processes.relay_process(db, kafka, popen, RELAY_BATCH_SIZE="20", LOG_LEVEL="INFO")
    )


def test_the_standby_relay_publishes_within_5s_when_the_leader_is_killed_under_load(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    with store_for(db_settings) as store, ExitStack() as stack:
        user = store.register_user(f"r-{uuid.uuid4().hex[:6]}@example.com", "h").aggregate.id
        leader = relay_process(db_settings, kafka_settings, tmp_path / "leader.log", stack)
        store.create_task(user, "first")
        consume_events(kafka_settings, until=lambda es: len(es) >= 2, timeout=30)
        standby = relay_process(db_settings, kafka_settings, tmp_path / "standby.log", stack)
        time.sleep(1.0)  # the standby is up, waiting for the lock

        stop_writing = threading.Event()

        def write() -> None:  # load while the leader dies
            n = 0
            while not stop_writing.is_set():
                store.create_task(user, f"load {n}")
                n += 1
                time.sleep(0.005)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(1.0)
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        killed_at = time.monotonic()
        probe = store.create_task(user, "after the leader died").aggregate.id
        probe_events = consume_events(
            kafka_settings,
            until=lambda es: any(getattr(e, "task_id", None) == probe for e in es),
            timeout=30,
        )
        took_over_in = time.monotonic() - killed_at
        stop_writing.set()
        writer.join(timeout=30)
        expected = {
            n.id for n in store.recorder.select_notifications(1, 1_000_000, topics=PUBLIC_TOPICS)
        }
        events = consume_events(
            kafka_settings, until=lambda es: expected <= {e.position for e in es}, timeout=60
        )
        assert standby.poll() is None, "the standby is the one publishing"

    standby_log = (tmp_path / "standby.log").read_text()[-3000:]
    assert probe_events, f"the standby published the command recorded after the kill\n{standby_log}"
    assert took_over_in < 5.0, f"standby took {took_over_in:.1f}s to publish\n{standby_log}"
    assert_contiguous_complete_and_ordered(events, expected)
