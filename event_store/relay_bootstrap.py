"""Composition root of the relay (`python -m event_store relay`): from settings and the adapters
passed in (else built from the environment), the relay with its heartbeat, and its health
endpoint (/health, /ready = the relay's loop turns and has not halted, /metrics). Tests build the
same with their own store and database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from common.health import Heartbeat, serve_health
from common.settings import (
    DatabaseSettings,
    HealthSettings,
    KafkaSettings,
    RelaySettings,
    database_settings,
    kafka_settings,
)
from event_store.application import TodoStore, store_env
from event_store.relay import KafkaPublisher, Publisher, Relay


class RelayProcess:
    """The relay and where it answers health checks; `run` until `stop` (a signal, a test)."""

    def __init__(self, relay: Relay, health: HealthSettings) -> None:
        self.relay = relay
        self._health = health

    def run(self) -> None:
        server = serve_health(
            self._health.HEALTH_HOST,
            self._health.RELAY_HEALTH_PORT,
            self.relay.heartbeat.readiness,
            "relay",
        )
        try:
            self.relay.run()
        finally:
            if server is not None:
                server.shutdown()

    def stop(self) -> None:
        self.relay.stop()


@contextmanager
def bootstrap(
    *,
    db: DatabaseSettings | None = None,
    kafka: KafkaSettings | None = None,
    settings: RelaySettings | None = None,
    health: HealthSettings | None = None,
    store: TodoStore | None = None,
    publisher: Publisher | None = None,
) -> Iterator[RelayProcess]:
    """The relay's parts. Without `store`: the event store on `db`; without `publisher`: an
    idempotent Kafka producer on `kafka`; what is built here is closed on exit (the producer
    flushed first), what is passed in is left to its owner."""
    db = db or database_settings()
    health = health or HealthSettings()
    with ExitStack() as owned:
        if store is None:
            store = TodoStore(env=store_env(db))
            owned.callback(store.close)
        if publisher is None:
            publisher = KafkaPublisher(kafka or kafka_settings())
            owned.callback(publisher.close)
        heartbeat = Heartbeat(health.HEALTH_STALE_SECONDS)
        relay = Relay(store, publisher, db, settings or RelaySettings(), heartbeat)
        yield RelayProcess(relay, health)
