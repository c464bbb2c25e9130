"""A consumer that hits a fatal error (librdkafka's FENCED_INSTANCE_ID after a coordinator failover)
never delivers again: the one Kafka source of every consumer (projector, mailer) replaces it with a
new consumer, and the uncommitted batch is delivered again to that one (found by the three-broker
kill test)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from consuming.source import KafkaSource
from runtime.kafka import is_fatal
from runtime.settings import KafkaSettings

FENCED = KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer")


class FakeMessage:
    def __init__(self, offset: int, error: KafkaError | None = None) -> None:
        self._offset, self._error = offset, error

    def error(self) -> KafkaError | None:
        return self._error

    def value(self) -> bytes:
        return b"{}"

    def key(self) -> bytes:
        return b"k"

    def topic(self) -> str:
        return "events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> None:
        return None


class FakeConsumer:
    """Delivers its scripted polls in turn, then nothing."""

    def __init__(self, polls: list[list[FakeMessage]]) -> None:
        self.polls = polls
        self.subscribed: list[str] = []
        self.closed = False

    def subscribe(self, topics: list[str], **_callbacks: Any) -> None:
        self.subscribed = topics

    def consume(self, _n: int, _timeout: float) -> list[FakeMessage]:
        return self.polls.pop(0) if self.polls else []

    def unsubscribe(self) -> None:
        pass

    def poll(self, _timeout: float) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_an_error_event_of_code_fatal_counts_as_fatal_even_when_its_own_flag_is_not_set() -> None:
    assert is_fatal(FENCED)
    assert is_fatal(KafkaError(KafkaError._FENCED, fatal=True))
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT))


def test_the_source_replaces_a_fatal_consumer_and_reads_on_from_the_new_one() -> None:
    first = FakeConsumer([[FakeMessage(5), FakeMessage(6, FENCED)]])
    second = FakeConsumer([[FakeMessage(5)]])
    made = iter([first, second])
    configs: list[dict[str, Any]] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        configs.append(config)
        return next(made)

    source = KafkaSource(KafkaSettings(), "projector", consumer_factory=factory)

    assert source.poll(10, 0.1) == []  # the failed consumer's batch is dropped, not committed
    assert first.closed and second.subscribed == ["events"]
    assert [m.offset() for m in source.poll(10, 0.1)] == [5]  # delivered again
    # A new static-member id, so the failed consumer's membership cannot fence the new one.
    assert configs[0]["group.instance.id"] != configs[1]["group.instance.id"]
