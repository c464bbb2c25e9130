from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from runtime.health import Heartbeat, serve_health


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_heartbeat_goes_stale_when_the_loop_stops_beating() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(stale_after=10, clock=clock)
    assert heartbeat.fresh()
    clock.now += 9
    assert heartbeat.fresh()
    clock.now += 2
    assert not heartbeat.fresh()
    heartbeat.beat()
    assert heartbeat.fresh()


def test_the_health_endpoint_answers_alive_and_ready_as_the_worker_reports() -> None:
    ready = {"value": True}
    port = free_port()
    server = serve_health("127.0.0.1", port, lambda: ready["value"], "test")
    assert server is not None
    try:
        assert get(port, "/health") == (200, {"status": "ok"})
        assert get(port, "/ready") == (200, {"status": "ready"})
        ready["value"] = False
        assert get(port, "/ready") == (503, {"status": "unavailable"})
        assert get(port, "/health") == (200, {"status": "ok"})
        assert get(port, "/nope")[0] == 404
    finally:
        server.shutdown()


def test_a_readiness_check_that_raises_answers_503_not_a_crash() -> None:
    def broken() -> bool:
        raise RuntimeError("db gone")

    port = free_port()
    server = serve_health("127.0.0.1", port, broken, "test")
    assert server is not None
    try:
        assert get(port, "/ready")[0] == 503
    finally:
        server.shutdown()


@pytest.mark.parametrize("taken", [True, False])
def test_port_zero_or_a_taken_port_leaves_the_worker_running_without_an_endpoint(
    taken: bool,
) -> None:
    if not taken:
        assert serve_health("127.0.0.1", 0, lambda: True, "test") is None
        return
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert serve_health("127.0.0.1", holder.getsockname()[1], lambda: True, "test") is None


def test_a_halted_worker_is_not_ready_and_says_why_even_while_its_loop_turns() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(stale_after=10, clock=clock)
    port = free_port()
    server = serve_health("127.0.0.1", port, heartbeat.readiness, "test")
    assert server is not None
    try:
        assert get(port, "/ready") == (200, {"status": "ready"})
        clock.now += 11
        status, body = get(port, "/ready")
        assert (status, body["reason"]) == (503, "main loop has not turned for 10s")
        heartbeat.beat()
        heartbeat.halt("apply failed 6 time(s) on a bug: KeyError: 'x'")
        heartbeat.beat()
        assert get(port, "/ready") == (
            503,
            {"status": "unavailable", "reason": "apply failed 6 time(s) on a bug: KeyError: 'x'"},
        )
        assert get(port, "/health") == (200, {"status": "ok"}), "alive, so it can say why"
    finally:
        server.shutdown()
