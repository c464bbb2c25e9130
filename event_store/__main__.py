"""`python -m event_store relay` runs the store → Kafka relay until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse

from event_store.relay_bootstrap import bootstrap
from runtime.logging import configure_logging
from runtime.process import stop_on_signals
from runtime.settings import (
    HealthSettings,
    RelaySettings,
    database_settings,
    kafka_settings,
    runtime_settings,
)


def run_relay() -> None:
    settings = (database_settings(), kafka_settings(), RelaySettings(), HealthSettings())
    with bootstrap(*settings) as process:
        stop_on_signals(process.stop)
        process.run()


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
