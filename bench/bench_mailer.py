"""Mailer emails/s into a local SMTP sink (aiosmtpd in its own process, discarding): the full
mailer (Kafka consume -> processed_events check -> subscription check -> render -> SMTP -> record
-> commit) vs. raw aiosmtplib on one connection, without Kafka or database, in the same run:

- raw send_message: aiosmtplib's `send_message` of the same emails as `email` message objects
  built beforehand (it flattens each one, as a plain aiosmtplib sender does): issue 12's baseline;
- raw sendmail: aiosmtplib's `sendmail` of the bytes (nothing left but SMTP), the floor.

Each mailer run is its own process. `--before DIR` (another checkout, e.g. of main; may be
repeated) also runs that checkout's mailer in every round, rotating which goes first, so a change
is measured before/after interleaved, against the same raw baselines. Run through
bench/bench_digest.py (--only mailer).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg

from runtime.settings import DatabaseSettings, KafkaSettings

ROOT = Path(__file__).parents[1]

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


def raw_smtp_rate(port: int, emails: list[Any], *, flatten_each: bool) -> float:
    """aiosmtplib alone on one connection: `send_message` of message objects built beforehand
    (flatten_each: it flattens each, as issue 12's baseline always did) or `sendmail` of bytes."""
    import aiosmtplib

    messages = [message_from_bytes(e.data) for e in emails] if flatten_each else []

    async def go() -> float:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        started = time.perf_counter()
        if flatten_each:
            for m in messages:
                await client.send_message(m)
        else:
            for e in emails:
                await client.sendmail(e.sender, e.recipients, e.data)
        elapsed = time.perf_counter() - started
        await client.quit()
        return len(emails) / elapsed

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
try:
    from bench.bench_mailer import mailer_rate
except ImportError:  # a checkout from before the split of bench_digest.py
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
    composed = [composer.compose(e) for e in events]
    sides = {"mailer": ROOT} | {f"before {d.name}": d for d in before}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    ratios: dict[str, list[float]] = {name: [] for name in sides}
    floor_ratios: dict[str, list[float]] = {name: [] for name in sides}
    raw: list[float] = []
    floor: list[float] = []
    with smtp_sink(sink_port) as port, fresh_database() as db, fresh_topics() as kafka:
        migrate(db)
        produce(kafka, events)
        for run in range(runs):
            raw.append(raw_smtp_rate(port, composed, flatten_each=True))
            floor.append(raw_smtp_rate(port, composed, flatten_each=False))
            order = list(sides)[run % len(sides) :] + list(sides)[: run % len(sides)]
            for name in order:
                rates[name].append(mailer_rate_of(sides[name], db, kafka, port, emails))
                ratios[name].append(rates[name][-1] / raw[-1])
                floor_ratios[name].append(rates[name][-1] / floor[-1])
            line = ", ".join(f"{n} {rates[n][-1]:.0f}/s ({ratios[n][-1]:.2f}x)" for n in sides)
            print(
                f"  run {run + 1}: raw send_message {raw[-1]:.0f}/s,"
                f" raw sendmail {floor[-1]:.0f}/s, {line}"
            )
    print(
        f"baselines, one connection: raw send_message median {median(raw):.0f}/s,"
        f" raw sendmail of bytes median {median(floor):.0f}/s"
    )
    for name in sides:
        m = median(rates[name])
        print(
            f"{name} ({sides[name]}): median {m:.0f} emails/s; median of per-run ratios"
            f" {median(ratios[name]):.2f} to raw send_message"
            f" (target >= 0.8: {'OK' if median(ratios[name]) >= 0.8 else 'MISSED'}),"
            f" {median(floor_ratios[name]):.2f} to raw sendmail"
        )
