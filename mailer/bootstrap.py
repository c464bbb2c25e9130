"""Composition root of the mailer: the shared consumer loop (consuming.loop) with the mailer's
handler and settings; real adapters (Kafka, SMTP, PostgreSQL) wired from settings."""

from __future__ import annotations

import threading
from typing import Any

from consuming.loop import ConsumerLoop, DeadLetterSink, LoopSettings
from consuming.process import ConsumerProcess
from consuming.source import KafkaSource, MessageSource
from contracts.dead_letters import KafkaDeadLetters
from event_store.application import TodoStore, store_env
from mailer.compose import DigestComposer
from mailer.parking import PostgresParking
from mailer.ports import DIGEST_TYPE
from mailer.processed import MailerConnection, ProcessedEvents
from mailer.service import Mailer
from mailer.settings import MailerSettings
from mailer.smtp import SmtpSender
from mailer.subscriptions import StoreSubscriptions
from runtime.health import Heartbeat
from runtime.settings import ConsumerSettings, DatabaseSettings, HealthSettings, KafkaSettings


def bootstrap(
    settings: MailerSettings,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    health: HealthSettings,
    stop_flag: threading.Event | None = None,
) -> ConsumerProcess:
    """The whole process: the loop (as build_mailer) with its heartbeat, and the health endpoint
    on MAILER_HEALTH_PORT."""
    heartbeat = Heartbeat(health.HEALTH_STALE_SECONDS)
    loop = build_mailer(settings, db, kafka, stop_flag, heartbeat=heartbeat)
    return ConsumerProcess(loop, "mailer", health.HEALTH_HOST, health.MAILER_HEALTH_PORT)


def build_mailer(
    settings: MailerSettings,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    stop_flag: threading.Event | None = None,
    policy: ConsumerSettings | None = None,
    heartbeat: Heartbeat | None = None,
) -> ConsumerLoop:
    stop = stop_flag or threading.Event()
    overrides: dict[str, Any] = {}
    if settings.MAILER_INSTANCE_ID:
        overrides["group.instance.id"] = settings.MAILER_INSTANCE_ID
    source = KafkaSource(kafka, settings.MAILER_GROUP_ID, **overrides)
    handler = build_mailer_handler(settings, db, stop)
    return mailer_loop(handler, source, KafkaDeadLetters(kafka), settings, policy, stop, heartbeat)


def build_mailer_handler(
    settings: MailerSettings, db: DatabaseSettings, stop: threading.Event | None = None
) -> Mailer:
    """The handler alone (also what `dlq replay` sends through)."""
    should_stop = (stop or threading.Event()).is_set
    connection = MailerConnection(db.conninfo)
    return Mailer(
        settings,
        sender=SmtpSender(settings, should_stop),
        processed=ProcessedEvents(connection, should_stop),
        parking=PostgresParking(db.conninfo, settings.MAILER_GROUP_ID),
        composer=DigestComposer(settings),
        group=settings.MAILER_GROUP_ID,
        # The store for its mapper and events table only (the check runs on `connection`): one
        # pooled connection, not a pool of POSTGRES_POOL_SIZE idle ones per mailer process.
        subscriptions=StoreSubscriptions(
            TodoStore(env=store_env(db.model_copy(update={"POSTGRES_POOL_SIZE": 1}))), connection
        ),
    )


def mailer_loop(
    handler: Mailer,
    source: MessageSource,
    dead_letters: DeadLetterSink,
    settings: MailerSettings,
    policy: ConsumerSettings | None = None,
    stop: threading.Event | None = None,
    heartbeat: Heartbeat | None = None,
) -> ConsumerLoop:
    """The mailer's settings on the shared loop (unit tests pass fakes here)."""
    return ConsumerLoop(
        source,
        handler,
        dead_letters,
        LoopSettings(
            service="mailer",
            consumer=settings.MAILER_GROUP_ID,
            wanted=frozenset({DIGEST_TYPE}),
            batch_size=settings.MAILER_BATCH_SIZE,
            poll_timeout=0.5,
            rewind_pause=settings.MAILER_RETRY_INITIAL_SECONDS,
        ),
        policy or ConsumerSettings(),
        stop=stop,
        heartbeat=heartbeat,
    )
