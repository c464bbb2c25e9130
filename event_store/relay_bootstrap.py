"""Composition root of the relay (`python -m event_store relay`): from the settings and adapters
passed in (the store and the Kafka producer are built from the settings unless given), the relay
with its heartbeat, and its health endpoint (/health, /ready = the relay's loop turns and has not
halted, /metrics). Tests build the same with their own store and database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from event_store.application import TodoStore, store_env
from event_store.kafka_publisher import KafkaPublisher, Publisher
from event_store.relay import Relay
from runtime.health import Heartbeat, serve_health
from runtime.process import freeze_startup_heap
from runtime.settings import DatabaseSettings, HealthSettings, KafkaSettings, RelaySettings


@dataclass(frozen=True)
class RelayProcess:
    """The relay and where it answers health checks; `run` until `stop` (a signal, a test)."""

    relay: Relay
    health: HealthSettings

    def run(self) -> None:
        server = serve_health(
            self.health.HEALTH_HOST,
            self.health.RELAY_HEALTH_PORT,
            self.relay.heartbeat.readiness,
            "relay",
        )
        freeze_startup_heap()
        try:
            self.relay.run()
        finally:
            if server is not None:
                server.shutdown()

    def stop(self) -> None:
        self.relay.stop()


@contextmanager
def bootstrap(
    db: DatabaseSettings,
    kafka: KafkaSettings,
    settings: RelaySettings,
    health: HealthSettings,
    *,
    store: TodoStore | None = None,
    publisher: Publisher | None = None,
) -> Iterator[RelayProcess]:
    """The relay's parts. Without `store`: the event store on `db`; without `publisher`: an
    idempotent Kafka producer on `kafka`; what is built here is closed on exit (the producer
    flushed first), what is passed in is left to its owner."""
    with ExitStack() as owned:
        if store is None:
            store = TodoStore(env=store_env(db))
            owned.callback(store.close)
        if publisher is None:
            publisher = KafkaPublisher(kafka)
            owned.callback(publisher.close)
        heartbeat = Heartbeat(health.HEALTH_STALE_SECONDS)
        relay = Relay(store, publisher, db, settings, heartbeat)
        yield RelayProcess(relay, health)
