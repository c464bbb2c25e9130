"""GET /metrics of real processes (command API, relay, projector on ports 26000-26099) after real
commands: the counters move by exactly what was done, the positions reach the store's head; and a
rebuild's progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from projector.rebuild import Rebuild
from projector.settings import ProjectorSettings
from runtime.health import serve_health
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.read_side import migrate, seed
from tests.support.services import running, service, wait_for_http
from tests.support.system import store_for

API_PORT, RELAY_PORT, PROJECTOR_PORT, REBUILD_PORT = 26001, 26011, 26012, 26013
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    return value(
        samples,
        "http_request_duration_seconds_count",
        method=method,
        route=route,
        status=str(status),
    )


def eventually(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "metric did not reach its value in time"
        time.sleep(0.2)


def test_metrics_of_the_command_api_relay_and_projector_move_by_what_the_commands_did(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    migrate(db_settings)
    ports = {
        "COMMAND_API_PORT": str(API_PORT),
        "RELAY_HEALTH_PORT": str(RELAY_PORT),
        "PROJECTOR_HEALTH_PORT": str(PROJECTOR_PORT),
        "SCHEDULER_HEALTH_PORT": "0",
        "MAILER_HEALTH_PORT": "0",
    }
    api, relay, projector = (
        service(name, db_settings, kafka_settings, tmp_path, **ports)
        for name in ("command_api", "relay", "projector")
    )
    base = f"http://127.0.0.1:{API_PORT}"
    with running(api, relay, projector), httpx.Client(base_url=base, timeout=10) as http:
        for url in (f"{base}/ready", f"http://127.0.0.1:{RELAY_PORT}/ready"):
            wait_for_http(url)
        wait_for_http(f"http://127.0.0.1:{PROJECTOR_PORT}/health")
        creds = {"email": "metrics@example.com", "password": "metrics-password"}
        assert http.post("/auth/register", json=creds).status_code == 201
        token = http.post("/auth/login", json=creds).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        before = scrape(f"{base}/metrics")

        ids = []
        for i in range(5):
            created = http.post("/tasks", json={"title": f"task {i}"}, headers=auth)
            assert created.status_code == 201
            ids.append(created.json()["id"])
        renamed = http.patch(f"/tasks/{ids[0]}", json={"title": "renamed"}, headers=auth)
        assert renamed.status_code == 200
        missing = "00000000-0000-4000-8000-000000000000"
        assert http.patch(f"/tasks/{missing}", json={"done": True}, headers=auth).status_code == 404
        assert http.post("/tasks", json={"title": ""}, headers=auth).status_code == 422
        head = int(renamed.headers["X-Event-Position"])

        after = scrape(f"{base}/metrics")

        def delta(method: str, route: str, status: int) -> float:
            return requests(after, method, route, status) - requests(before, method, route, status)

        assert delta("POST", "/tasks", 201) == 5
        assert delta("POST", "/tasks", 422) == 1
        assert delta("PATCH", "/tasks/{task_id}", 200) == 1
        assert delta("PATCH", "/tasks/{task_id}", 404) == 1
        assert not any(n.startswith("http_") and f"/tasks/{ids[0]}" in str(lb) for n, lb in after)
        # group commit: 6 commands recorded (5 creates + 1 rename); the 404 and 422 recorded none
        commands = "group_commit_commands_per_transaction_sum"
        assert value(after, commands) - value(before, commands) == 6
        transactions = "group_commit_commands_per_transaction_count"
        assert 1 <= value(after, transactions) - value(before, transactions) <= 6

        relay_url = f"http://127.0.0.1:{RELAY_PORT}/metrics"
        eventually(lambda: value(scrape(relay_url), "relay_position") == head)
        relayed = scrape(relay_url)
        assert value(relayed, "event_store_head_position") == head
        assert value(relayed, "relay_lag_events") == 0
        assert value(relayed, "relay_lag_seconds") < 30

        projector_url = f"http://127.0.0.1:{PROJECTOR_PORT}/metrics"
        # 7 events on the topic (registration, 5 creations, 1 rename), one user: one partition
        eventually(lambda: total(scrape(projector_url), "consumer_committed_offset") == 7)
        projected = scrape(projector_url)
        positions = [v for (n, _), v in projected.items() if n == "consumer_position"]
        assert max(positions) == head
        # measured (the partition's high watermark is known), and caught up
        lags = {n: v for (n, _), v in projected.items() if n.startswith("consumer_lag_")}
        assert lags == {"consumer_lag_events": 0, "consumer_lag_seconds": 0}
        assert total(projected, "dead_letters_total") == 0


def test_a_rebuild_reports_its_progress_on_its_metrics_port(read_db: DatabaseSettings) -> None:
    with store_for(read_db) as store:
        seed(store, users=20, tasks_per_user=10)
        head = store.recorder.max_notification_id()
        assert head
        server = serve_health("127.0.0.1", REBUILD_PORT, lambda: True, "rebuild")
        assert server is not None
        try:
            Rebuild(store, read_db, ProjectorSettings(), workers=1, show_progress=False).run()
            samples = scrape(f"http://127.0.0.1:{REBUILD_PORT}/metrics")
        finally:
            server.shutdown()
            server.server_close()
    assert value(samples, "rebuild_target_position") == head
    assert value(samples, "rebuild_replayed_position") == head
