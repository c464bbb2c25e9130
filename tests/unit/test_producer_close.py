"""Closing a producer whose broker is gone: it must return (librdkafka's `close()` alone waits for
the queue with no timeout) and free the client (left alive, it retries the broker for as long as
the object lives). A real librdkafka producer, pointed at a port where no broker listens."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import Producer

from runtime.kafka import close_producer
from tests.support.smtp import free_port


def test_a_producer_whose_broker_is_gone_closes_within_its_grace_and_drops_what_is_queued() -> None:
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0})
    producer.produce("events", b"never acknowledged")
    dropped: list[int] = []
    closing = threading.Thread(
        target=lambda: dropped.append(close_producer(producer, 0.2)), daemon=True
    )

    closing.start()
    closing.join(timeout=10)

    assert not closing.is_alive(), "close_producer waited for a broker that is not there"
    assert dropped == [1]
    with pytest.raises(RuntimeError, match="closed"):
        producer.flush(0)
