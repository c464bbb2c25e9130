"""GET /stream for real: commands through the whole pipeline (store, relay, Kafka, projector) reach
the owner's open stream — and only the owner's — and a reconnect with Last-Event-ID gets exactly
what it missed. The query API runs as `python -m query_api` so the stream is a real HTTP stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.http_server import free_port
from tests.support.read_side import running_projector, wait_until
from tests.support.services import running, service, wait_for_http
from tests.support.system import auth, command_client, register_and_login, running_relay, store_for

pytestmark = pytest.mark.integration


@dataclass
class Listener:
    """One open stream, read on its own thread; messages as (id, event, data)."""

    url: str
    token: str
    last_event_id: str | None = None
    messages: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = auth(self.token)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        with httpx.stream("GET", self.url, headers=headers, timeout=30) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            message: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line == "" and "id" in message:
                    self.messages.append(
                        (int(message["id"]), message["event"], json.loads(message["data"]))
                    )
                    message = {}
                elif not line.startswith(":") and ":" in line:
                    name, _, value = line.partition(":")
                    message[name] = value.strip()

    def tasks(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each task's last message: (event, data)."""
        return {m[2]["id"]: (m[1], m[2]) for m in self.messages if m[1] != "ready"}


@contextmanager
def listening(url: str, token: str, last_event_id: str | None = None) -> Iterator[Listener]:
    listener = Listener(url, token, last_event_id)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener._stop.set()  # the thread ends at its next line (a heartbeat at the latest)


def test_a_users_changes_reach_their_open_stream_in_order_and_a_reconnect_resumes_exactly(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    port = free_port()
    query_api = service(
        "query_api",
        read_db,
        kafka_settings,
        tmp_path,
        QUERY_API_PORT=str(port),
        QUERY_STREAM_HEARTBEAT_SECONDS="1",
    )
    url = f"http://127.0.0.1:{port}/stream"
    with (
        store_for(read_db) as store,
        command_client(store, read_db) as commands,
        running_relay(store, read_db, kafka_settings),
        running_projector(read_db, kafka_settings, group="projector-stream"),
        running(query_api),
    ):
        wait_for_http(f"http://127.0.0.1:{port}/ready")
        ada = register_and_login(commands, "ada@example.com")
        bob = register_and_login(commands, "bob@example.com")
        with listening(url, ada) as stream:
            wait_until(lambda: stream.messages[:1] != [], 10, "the ready message")
            assert stream.messages[0][1] == "ready"
            first = commands.post("/tasks", json={"title": "first"}, headers=auth(ada)).json()
            second = commands.post("/tasks", json={"title": "second"}, headers=auth(ada)).json()
            commands.patch(f"/tasks/{first['id']}", json={"done": True}, headers=auth(ada))
            commands.delete(f"/tasks/{second['id']}", headers=auth(ada))
            bobs = commands.post("/tasks", json={"title": "bob's"}, headers=auth(bob)).json()
            wait_until(
                lambda: stream.tasks().get(second["id"], ("",))[0] == "task_deleted",
                15,
                "ada's changes on her stream",
            )
            seen = stream.tasks()
            ids = [m[0] for m in stream.messages]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), "in store order, each once"
        assert seen[first["id"]] == ("task", {**seen[first["id"]][1], "done": True, "version": 2})
        assert bobs["id"] not in seen, "another user's change never reaches a stream"

        # Offline for a while: two changes happen; the reconnect gets them, nothing older.
        last = str(ids[-1])
        third = commands.post("/tasks", json={"title": "third"}, headers=auth(ada)).json()
        commands.patch(f"/tasks/{first['id']}", json={"title": "renamed"}, headers=auth(ada))
        with listening(url, ada, last_event_id=last) as resumed:
            wait_until(lambda: len(resumed.tasks()) >= 2, 15, "the missed changes")
            missed = resumed.tasks()
            resumed_ids = [m[0] for m in resumed.messages]
        assert set(missed) == {third["id"], first["id"]}
        assert missed[first["id"]][1]["title"] == "renamed"
        assert min(resumed_ids) > int(last), "nothing already received is sent again"
