"""The projector's bootstrap builds the whole process, health included: its /ready reports the
loop's own heartbeat while it runs, stop() ends it, and the endpoint goes with it."""

from __future__ import annotations

import threading

import httpx
import pytest

from projector.bootstrap import bootstrap
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings, HealthSettings, KafkaSettings
from tests.support.consumer_fakes import FakeDeadLetters, FakeSource, InMemoryProjection
from tests.support.http_server import free_port


def test_the_projector_process_serves_its_loops_health_until_stopped() -> None:
    port = free_port()
    source = FakeSource()
    process = bootstrap(
        DatabaseSettings(),
        KafkaSettings(),
        ProjectorSettings(PROJECTOR_POLL_TIMEOUT_SECONDS=0.05),
        HealthSettings(PROJECTOR_HEALTH_PORT=port, HEALTH_STALE_SECONDS=5),
        source=source,
        projection=InMemoryProjection(),
        dead_letters=FakeDeadLetters(),
    )
    running = threading.Thread(target=process.run)
    running.start()
    try:
        ready = _get_when_up(f"http://127.0.0.1:{port}/ready")
        assert ready.status_code == 200
        process.loop.heartbeat.halt("a bug outlasted its retries")  # what the loop does then
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 503
    finally:
        process.stop()
        running.join(timeout=10)
    assert not running.is_alive()
    assert source.closed  # the loop closed its adapters on the way out
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")


def _get_when_up(url: str) -> httpx.Response:
    for _ in range(100):
        try:
            return httpx.get(url)
        except httpx.ConnectError:
            threading.Event().wait(0.05)
    raise AssertionError(f"{url} never answered")
