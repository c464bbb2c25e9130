"""The workers' /metrics (on the health port) and the consumer position/lag bookkeeping."""

from __future__ import annotations

import socket
import urllib.request
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from consuming.metrics import count_dead_letters, observe_consumer
from runtime import metrics
from runtime.health import serve_health


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_health_port_serves_the_registered_metrics_in_the_text_format() -> None:
    metrics.register(*metrics.RELAY)
    metrics.RELAY_POSITION.set(41)
    port = free_port()
    server = serve_health("127.0.0.1", port, lambda: True, "test")
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
    finally:
        server.shutdown()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["relay_position"] == 41


def test_a_consumer_reports_offset_position_and_lag_per_partition() -> None:
    metrics.register(*metrics.CONSUMER)
    old = datetime.now(UTC) - timedelta(seconds=30)
    highs = {("events", 0): 110, ("events", 1): 7}
    observe_consumer(
        "unit",
        {("events", 0): 100, ("events", 1): 7},
        [(("events", 0), 5, old), (("events", 0), 9, old), (("events", 1), 8, old)],
        lambda t, p: highs[t, p],
    )
    assert sample("consumer_committed_offset", service="unit", partition="0") == 100
    assert sample("consumer_position", service="unit", partition="0") == 9  # the last one wins
    assert sample("consumer_lag_events", service="unit", partition="0") == 10
    lag = sample("consumer_lag_seconds", service="unit", partition="0")
    assert lag is not None and 29 < lag < 120
    # partition 1 is at its high watermark: caught up, whatever the event's age
    assert sample("consumer_lag_events", service="unit", partition="1") == 0
    assert sample("consumer_lag_seconds", service="unit", partition="1") == 0


def test_dead_letters_are_counted_by_reason_class_not_by_free_text() -> None:
    metrics.register(metrics.DEAD_LETTERS)
    before = sample("dead_letters_total", service="unit", kind="poison", reason="undecodable")
    count_dead_letters(
        "unit",
        [("poison", "undecodable: bad json at 1"), ("poison", "undecodable: bad json at 2")],
    )
    after = sample("dead_letters_total", service="unit", kind="poison", reason="undecodable")
    assert (after or 0) - (before or 0) == 2
    count_dead_letters(
        "unit",
        [("parked", "parked behind events/0/12 of aggregate 5d0c"), ("poison", "550 5.1.1: no")],
    )
    assert sample("dead_letters_total", service="unit", kind="parked", reason="behind poison") == 1
    assert sample("dead_letters_total", service="unit", kind="poison", reason="other") == 1


def test_every_metric_name_is_declared_once() -> None:
    names = [f.name for c in metrics.ALL for f in c.collect()]
    assert len(names) == len(set(names))
