"""`python -m event_store relay` runs the store → Kafka relay until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse

from common.health import Heartbeat, serve_health
from common.logging import configure_logging
from common.process import stop_on_signals
from common.settings import (
    HealthSettings,
    RelaySettings,
    database_settings,
    kafka_settings,
    runtime_settings,
)
from event_store.application import TodoStore, store_env
from event_store.relay import KafkaPublisher, Relay


def run_relay() -> None:
    db = database_settings()
    store = TodoStore(env=store_env(db))
    publisher = KafkaPublisher(kafka_settings())
    health = HealthSettings()
    relay = Relay(store, publisher, db, RelaySettings(), Heartbeat(health.HEALTH_STALE_SECONDS))
    serve_health(health.HEALTH_HOST, health.RELAY_HEALTH_PORT, relay.heartbeat.readiness, "relay")

    stop_on_signals(relay.stop)
    try:
        relay.run()
    finally:
        publisher.close()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m event_store")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("relay", help="publish stored events to Kafka, in order, forever")
    args = parser.parse_args()
    configure_logging("relay", runtime_settings().LOG_LEVEL)
    if args.command == "relay":
        run_relay()


if __name__ == "__main__":
    main()
