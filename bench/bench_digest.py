"""Daily digest benchmarks, each beside a baseline measured in the same run (scratch database and
topics on the real PostgreSQL and Kafka; nothing of yours is touched):

1. Scheduler batch for N users (default 100k): the full `run_date` (read tables → store) vs. the
   raw time of its read queries alone (keyset pages + per-page aggregate), recording through the
   store's bulk method TodoStore.request_daily_digests, one page at a time.
2. Mailer emails/s into a local SMTP sink (aiosmtpd in its own process, discarding): the full
   mailer (Kafka consume → processed_events check → render → SMTP → record → commit) vs. raw
   aiosmtplib sends/s of pre-rendered messages on one connection, without Kafka or database.
   Each mailer run is its own process. `--before DIR` (another checkout, e.g. of main; may be
   repeated) also runs that checkout's mailer in every round, rotating which goes first, so a
   change is measured before/after interleaved, against the same raw baseline.

    .venv/bin/python bench/bench_digest.py [--users 100000] [--emails 3000] [--runs 3]
        [--only mailer] [--before ../main-checkout] [--sink-port 1025]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import psycopg  # noqa: E402

from runtime.settings import DatabaseSettings, KafkaSettings  # noqa: E402

SINK_CODE = """
import asyncio, sys, threading
from aiosmtpd.controller import Controller
class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Discard(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
threading.Event().wait()
"""


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- 1. scheduler batch ---------------------------------------------------------------------


def populate(db: DatabaseSettings, users: int) -> tuple[int, int]:
    """`users` users; 90% with 1-9 tasks (~30% done, ~5% deleted), 10% without tasks."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute(
            "insert into users (id, email, created_at, version, position)"
            " select gen_random_uuid(), 'user' || i || '@bench.example.com', now(), 1, i"
            " from generate_series(1, %s) i",
            (users,),
        )
        conn.execute(
            "insert into tasks (id, user_id, title, done, created_at, done_at, version, deleted,"
            " position)"
            " select gen_random_uuid(), u.id, 'task ' || j || ' of ' || u.email, random() < 0.3,"
            " now() - j * interval '1 minute', null, 1, random() < 0.05, 1"
            " from users u, generate_series(1, 9) j"
            " where abs(hashtext(u.email)) % 10 <> 0 and j <= 1 + abs(hashtext(u.email)) % 9"
        )
        conn.execute("analyze users")
        conn.execute("analyze tasks")
        row = conn.execute("select count(*) from tasks").fetchone()
    return users, int(row[0]) if row else 0


def bench_batch(users: int, runs: int) -> None:
    from event_store.application import TodoStore, store_env
    from scheduler.batch import ReadTables
    from scheduler.service import DigestService
    from scheduler.settings import SchedulerSettings
    from tests.support.digest import SeededReadSide
    from tests.support.infra import fresh_database
    from tests.support.read_side import migrate

    settings = SchedulerSettings()
    print(f"\n== scheduler batch: {users} users, {runs} runs")
    with fresh_database() as db:
        migrate(db)
        started = time.perf_counter()
        _, tasks = populate(db, users)
        print(f"populated {users} users, {tasks} tasks in {time.perf_counter() - started:.1f} s")
        source = ReadTables(
            db.conninfo,
            page_size=settings.SCHEDULER_PAGE_SIZE,
            max_titles=settings.SCHEDULER_MAX_UNDONE_TITLES,
        )
        reads: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            assert sum(len(page) for page in source.pages()) == users
            reads.append(time.perf_counter() - started)
        r = median(reads)
        print(f"baseline: read queries alone, median {r:.2f} s")
        day = date(2026, 11, 1)
        for label in ["bulk: TodoStore.request_daily_digests per page, next page read meanwhile"]:
            store = TodoStore(env=store_env(db))
            try:
                service = DigestService(settings, db, store, SeededReadSide(store))
                batches, reruns = [], []
                recorded = 0
                for run in range(runs):
                    day += timedelta(days=1)  # a new date: every digest is new
                    summary = service.run_date(day, skip_if_completed=False)
                    assert summary is not None and summary.users == users
                    batches.append(summary.seconds)
                    recorded = summary.recorded
                    rerun = service.run_date(day, skip_if_completed=False)
                    assert rerun is not None and rerun.recorded == 0
                    reruns.append(rerun.seconds)
                    print(
                        f"  {label} run {run + 1}: batch {batches[-1]:.2f} s"
                        f" ({summary.recorded} digests), idempotent re-run {reruns[-1]:.2f} s"
                    )
            finally:
                store.close()
            b = median(batches)
            target = "OK" if b * 100_000 / users < 30 else "MISSED"
            print(
                f"{label}: median {b:.2f} s for {users} users ({recorded} digests,"
                f" {recorded / b:.0f}/s), re-run {median(reruns):.2f} s,"
                f" batch/read-baseline {b / r:.1f}x; 100k users < 30 s: {target}"
            )


# --- 2. mailer ------------------------------------------------------------------------------


@contextmanager
def smtp_sink(port: int | None = None) -> Iterator[int]:
    from tests.support.smtp import free_port

    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SINK_CODE, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def digest_events(count: int) -> list[Any]:
    from contracts.events import DailyDigestRequested, DigestStats

    day = date(2026, 11, 23)
    return [
        DailyDigestRequested(
            event_id=uuid4(),
            occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
            user_id=uuid4(),
            position=i + 1,
            aggregate_version=1,
            digest_id=uuid4(),
            digest_date=day,
            email=f"user{i}@bench.example.com",
            stats=DigestStats(total=7, done=2, undone=5),
            undone_titles=[f"task {j} of user {i} <with> & markup" for j in range(5)],
        )
        for i in range(count)
    ]


def raw_smtp_rate(port: int, messages: list[Any]) -> float:
    import aiosmtplib

    async def go() -> float:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        started = time.perf_counter()
        for m in messages:
            await client.send_message(m)
        elapsed = time.perf_counter() - started
        await client.quit()
        return len(messages) / elapsed

    return asyncio.run(go())


def produce(kafka: KafkaSettings, events: list[Any]) -> None:
    from confluent_kafka import Producer

    from contracts.events import encode_event
    from runtime.kafka import producer_config

    producer = Producer(producer_config(kafka))
    for e in events:
        while True:
            try:
                producer.produce(
                    kafka.KAFKA_TOPIC,
                    key=str(e.user_id).encode(),
                    value=encode_event(e),
                    headers={"type": e.type, "event_id": str(e.event_id)},
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0


def mailer_rate(db: DatabaseSettings, kafka: KafkaSettings, port: int, count: int) -> float:
    """Emails/s of the full mailer from its first send to the last (group join excluded)."""
    from mailer.bootstrap import build_mailer
    from mailer.settings import MailerSettings

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("truncate processed_events")
    settings = MailerSettings(SMTP_PORT=port, MAILER_GROUP_ID=f"bench-{uuid4().hex[:8]}")
    mailer = build_mailer(settings, db, kafka)
    thread = threading.Thread(target=mailer.run, daemon=True)
    thread.start()
    first: float | None = None
    deadline = time.monotonic() + 300
    try:
        while mailer.counters.handled < count and time.monotonic() < deadline:
            if first is None and mailer.counters.batches > 0:
                first = time.perf_counter()
            time.sleep(0.002)
        done = time.perf_counter()
    finally:
        mailer.stop()
        thread.join(timeout=30)
    assert mailer.counters.handled == count, f"sent {mailer.counters.handled} of {count}"
    assert first is not None
    # The first batch's sends were not timed: count them out.
    return count / (done - first)


MAILER_RUN_CODE = """
import sys
sys.path.insert(0, sys.argv[1])
from bench.bench_digest import mailer_rate
from runtime.settings import DatabaseSettings, KafkaSettings
print(mailer_rate(DatabaseSettings(), KafkaSettings(), int(sys.argv[2]), int(sys.argv[3])))
"""


def mailer_rate_of(
    checkout: Path, db: DatabaseSettings, kafka: KafkaSettings, port: int, count: int
) -> float:
    """mailer_rate of `checkout`'s code, in a process of its own (the same for every checkout,
    so neither side carries the benchmark's own memory and threads)."""
    env = {
        **os.environ,
        "POSTGRES_DB": db.POSTGRES_DB,
        "KAFKA_TOPIC": kafka.KAFKA_TOPIC,
        "KAFKA_DLQ_TOPIC": kafka.KAFKA_DLQ_TOPIC,
    }
    out = subprocess.run(
        [sys.executable, "-c", MAILER_RUN_CODE, str(checkout), str(port), str(count)],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return float(out.stdout.strip().splitlines()[-1])


def bench_mailer(emails: int, runs: int, before: list[Path], sink_port: int | None) -> None:
    from mailer.compose import DigestComposer
    from mailer.settings import MailerSettings
    from tests.support.infra import fresh_database, fresh_topics
    from tests.support.read_side import migrate

    print(f"\n== mailer: {emails} emails into a local SMTP sink (aiosmtpd process), {runs} runs")
    events = digest_events(emails)
    composer = DigestComposer(MailerSettings())
    messages = [composer.compose(e) for e in events]
    sides = {"mailer": ROOT} | {f"before {d.name}": d for d in before}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    ratios: dict[str, list[float]] = {name: [] for name in sides}
    raw: list[float] = []
    with smtp_sink(sink_port) as port, fresh_database() as db, fresh_topics() as kafka:
        migrate(db)
        produce(kafka, events)
        for run in range(runs):
            raw.append(raw_smtp_rate(port, messages))
            order = list(sides)[run % len(sides) :] + list(sides)[: run % len(sides)]
            for name in order:
                rates[name].append(mailer_rate_of(sides[name], db, kafka, port, emails))
                ratios[name].append(rates[name][-1] / raw[-1])
            line = ", ".join(f"{n} {rates[n][-1]:.0f}/s ({ratios[n][-1]:.2f}x)" for n in sides)
            print(f"  run {run + 1}: raw aiosmtplib {raw[-1]:.0f}/s, {line}")
    r = median(raw)
    print(f"baseline: raw aiosmtplib on one connection median {r:.0f}/s")
    for name in sides:
        m = median(rates[name])
        print(
            f"{name} ({sides[name]}): median {m:.0f} emails/s, mailer/raw of the medians"
            f" {m / r:.2f}, median of per-run ratios {median(ratios[name]):.2f}"
            f" (target >= 0.8: {'OK' if median(ratios[name]) >= 0.8 else 'MISSED'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["batch", "mailer"], default=None)
    parser.add_argument("--before", type=Path, action="append", default=[], help="checkout")
    parser.add_argument("--sink-port", type=int, default=None, help="SMTP sink port (default: any)")
    args = parser.parse_args()
    steps: dict[str, Callable[[], None]] = {
        "batch": lambda: bench_batch(args.users, args.runs),
        "mailer": lambda: bench_mailer(args.emails, args.runs, args.before, args.sink_port),
    }
    for name, step in steps.items():
        if args.only in (None, name):
            step()


if __name__ == "__main__":
    main()
