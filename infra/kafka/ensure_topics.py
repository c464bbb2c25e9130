#!/usr/bin/env python3
"""Wait for a Kafka broker to answer metadata requests, then create topics idempotently.

Used by infra/kafka.sh (readiness check + topic creation), usable on its own:

    python infra/kafka/ensure_topics.py --bootstrap 127.0.0.1:9092 --timeout 90 events events.dlq

Exit codes: 0 ready (and topics exist with a leader on every partition),
1 timeout or error, 2 the process given with --pid died while waiting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


def _quiet_logger() -> logging.Logger:
    # librdkafka logs every refused connection while the broker is starting; keep it quiet.
    log = logging.getLogger("ensure_topics.librdkafka")
    log.addHandler(logging.NullHandler())
    log.setLevel(logging.CRITICAL)
    log.propagate = False
    return log


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessDiedError(Exception):
    pass


def wait_for_broker(
    admin: AdminClient, deadline: float, pid: int | None, min_brokers: int = 1
) -> None:
    last_err: Exception | None = None
    while True:
        if not _alive(pid):
            raise ProcessDiedError(f"broker process {pid} exited")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"broker not ready: {last_err}")
        try:
            md = admin.list_topics(timeout=min(2.0, max(remaining, 0.1)))
            if len(md.brokers) >= min_brokers:
                return
            last_err = RuntimeError(f"{len(md.brokers)} of {min_brokers} brokers registered")
        except KafkaException as e:
            last_err = e
        time.sleep(0.2)


def ensure_topics(
    admin: AdminClient,
    topics: list[str],
    partitions: int,
    replication: int,
    deadline: float,
    pid: int | None,
    min_insync_replicas: int | None = None,
) -> dict[str, int]:
    # A cluster's topics say it themselves, so a broker default cannot weaken them.
    config = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
    pending = list(topics)
    while pending:
        if not _alive(pid):
            raise ProcessDiedError(f"broker process {pid} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not create topics {pending}")
        existing = admin.list_topics(timeout=5).topics
        to_create = [t for t in pending if t not in existing]
        retry = []
        if to_create:
            futures = admin.create_topics(
                [
                    NewTopic(
                        t, num_partitions=partitions, replication_factor=replication, config=config
                    )
                    for t in to_create
                ],
                request_timeout=15,
            )
            for topic, fut in futures.items():
                try:
                    fut.result()
                except KafkaException as e:
                    err = e.args[0] if e.args else None
                    if (
                        isinstance(err, KafkaError)
                        and err.code() == KafkaError.TOPIC_ALREADY_EXISTS
                    ):
                        continue
                    if (
                        isinstance(err, KafkaError)
                        and not err.retriable()
                        and err.code()
                        not in (
                            KafkaError._TIMED_OUT,
                            KafkaError.REQUEST_TIMED_OUT,
                            KafkaError._TRANSPORT,
                        )
                    ):
                        raise
                    retry.append(topic)
        pending = retry
        if pending:
            time.sleep(0.5)

    # Wait until every partition of every topic has a leader, so producers can send right away.
    while True:
        if not _alive(pid):
            raise ProcessDiedError(f"broker process {pid} exited")
        md = admin.list_topics(timeout=5)
        counts, ready = {}, True
        for t in topics:
            tm = md.topics.get(t)
            if tm is None or tm.error is not None or not tm.partitions:
                ready = False
                break
            if any(p.leader < 0 or p.error is not None for p in tm.partitions.values()):
                ready = False
                break
            counts[t] = len(tm.partitions)
        if ready:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders: {topics}")
        time.sleep(0.2)


def in_sync_replicas(admin: AdminClient, topics: list[str]) -> dict[str, list[int]]:
    """Per topic, the number of in-sync replicas of each partition (by partition id)."""
    md = admin.list_topics(timeout=10)
    return {
        t: [len(p.isrs) for _, p in sorted(md.topics[t].partitions.items())]
        for t in topics
        if t in md.topics
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("topics", nargs="*", help="topic names to create if missing")
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--timeout", type=float, default=90.0, help="overall seconds (default 90)")
    ap.add_argument(
        "--partitions", type=int, default=3, help="partitions for new topics (default 3)"
    )
    ap.add_argument("--replication-factor", type=int, default=1)
    ap.add_argument(
        "--min-insync-replicas", type=int, default=None, help="topic config for new topics"
    )
    ap.add_argument(
        "--min-brokers", type=int, default=1, help="ready when this many brokers are registered"
    )
    ap.add_argument("--isr", action="store_true", help="print in-sync replica counts as JSON")
    ap.add_argument("--pid", type=int, default=None, help="fail fast if this process dies")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    deadline = time.monotonic() + args.timeout
    config: dict[str, Any] = {"bootstrap.servers": args.bootstrap, "logger": _quiet_logger()}
    admin = AdminClient(config)
    try:
        wait_for_broker(admin, deadline, args.pid, args.min_brokers)
        if args.isr:
            print(json.dumps(in_sync_replicas(admin, args.topics)))
            return 0
        counts = ensure_topics(
            admin,
            args.topics,
            args.partitions,
            args.replication_factor,
            deadline,
            args.pid,
            args.min_insync_replicas,
        )
    except ProcessDiedError as e:
        print(f"ensure_topics: {e}", file=sys.stderr)
        return 2
    except (TimeoutError, KafkaException) as e:
        print(f"ensure_topics: {args.bootstrap}: {e}", file=sys.stderr)
        return 1
    for t, n in counts.items():
        if n != args.partitions:
            print(
                f"ensure_topics: warning: topic {t} has {n} partitions (wanted {args.partitions}); "
                "existing topics are not altered",
                file=sys.stderr,
            )
    if not args.quiet:
        desc = ", ".join(f"{t}({n})" for t, n in counts.items()) or "no topics requested"
        print(f"kafka ready at {args.bootstrap}: {desc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
