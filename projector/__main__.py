"""`python -m projector consume | rebuild | status`.

python -m projector consume          # live: Kafka `events` -> read tables, until SIGINT/SIGTERM
python -m projector rebuild          # replay the event store into fresh tables, swap them in
python -m projector status [--json]  # store head, relay, projector positions and lag
python -m projector dlq list|replay|fix|discard   # parked messages (docs/runbooks/dead-letters.md)
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from consuming import parking
from consuming.dlq_cli import add_dlq_commands, run_dlq
from event_store.application import TodoStore, store_env
from projector.bootstrap import bootstrap
from projector.rebuild import Rebuild, RebuildInProgressError
from projector.replay import ProjectorReplayer
from projector.settings import ProjectorSettings
from projector.status import collect_status, format_status, status_json
from runtime.health import serve_health
from runtime.logging import configure_logging
from runtime.process import freeze_startup_heap, stop_on_signals
from runtime.settings import (
    HealthSettings,
    RelaySettings,
    database_settings,
    kafka_settings,
    runtime_settings,
)


def consume() -> int:
    process = bootstrap(
        database_settings(), kafka_settings(), ProjectorSettings(), HealthSettings()
    )
    stop_on_signals(process.stop)
    freeze_startup_heap()
    process.run()
    return 0


def rebuild(workers: int | None, progress: bool, metrics_port: int) -> int:
    db = database_settings()
    # rebuild_replayed_position / rebuild_target_position on GET /metrics while it runs
    serve_health(HealthSettings().HEALTH_HOST, metrics_port, lambda: True, "rebuild")
    store = TodoStore(env=store_env(db))
    try:
        summary = Rebuild(
            store, db, ProjectorSettings(), workers=workers, show_progress=progress
        ).run()
    except RebuildInProgressError as e:
        print(f"rebuild refused: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(summary)
    group = ProjectorSettings().PROJECTOR_GROUP_ID
    with psycopg.connect(db.conninfo, autocommit=True) as conn, conn.cursor() as cur:
        parked = len(parking.list_parked(cur, group))
    if parked:
        # The rebuild does not touch dead_letters (docs/read-side.md): they still need a replay.
        print(f"{parked} parked message(s) remain: see `python -m projector dlq list`, then replay")
    return 0


def status(as_json: bool) -> int:
    db = database_settings()
    store = TodoStore(env=store_env(db))
    try:
        head = store.head_position()
    finally:
        store.close()
    result = collect_status(
        head,
        db,
        kafka_settings(),
        ProjectorSettings().PROJECTOR_GROUP_ID,
        RelaySettings().RELAY_NAME,
    )
    print(status_json(result) if as_json else format_status(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m projector", description="The read side.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("consume", help="project Kafka events into the read tables, forever")
    rebuild_cmd = sub.add_parser(
        "rebuild",
        help="rebuild the read tables from the event store, swap them in without downtime",
    )
    rebuild_cmd.add_argument(
        "--workers", type=int, default=None, help="replay processes (default: one per CPU core)"
    )
    rebuild_cmd.add_argument("--no-progress", action="store_true", help="no progress bar")
    rebuild_cmd.add_argument(
        "--metrics-port", type=int, default=0, help="serve GET /metrics here while running"
    )
    status_cmd = sub.add_parser("status", help="store head, relay and projector positions, lag")
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    add_dlq_commands(sub)
    args = parser.parse_args(argv)
    configure_logging("projector", runtime_settings().LOG_LEVEL)
    if args.command == "consume":
        return consume()
    if args.command == "rebuild":
        return rebuild(args.workers, not args.no_progress, args.metrics_port)
    if args.command == "dlq":
        group = ProjectorSettings().PROJECTOR_GROUP_ID
        return run_dlq(args, database_settings().conninfo, group, ProjectorReplayer)
    return status(args.json)


if __name__ == "__main__":
    sys.exit(main())
