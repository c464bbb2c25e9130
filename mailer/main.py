"""Composition root of the mailer: real adapters (Kafka, SMTP, PostgreSQL) wired from settings."""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import Consumer

from common.dead_letters import KafkaDeadLetters
from common.kafka import consumer_config
from common.settings import ConsumerSettings, DatabaseSettings, KafkaSettings
from event_store.application import TodoStore, store_env
from mailer.compose import DigestComposer
from mailer.parking import PostgresParking
from mailer.processed import ProcessedEvents
from mailer.service import Mailer
from mailer.settings import MailerSettings
from mailer.smtp import SmtpSender
from mailer.subscriptions import StoreSubscriptions


def build_mailer(
    settings: MailerSettings,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    stop_flag: threading.Event | None = None,
    policy: ConsumerSettings | None = None,
) -> Mailer:
    stop = stop_flag or threading.Event()
    policy = policy or ConsumerSettings()
    overrides: dict[str, Any] = {}
    if settings.MAILER_INSTANCE_ID:
        overrides["group.instance.id"] = settings.MAILER_INSTANCE_ID

    def consumer() -> Consumer:
        return Consumer(consumer_config(kafka, settings.MAILER_GROUP_ID, **overrides))

    return Mailer(
        settings,
        sender=SmtpSender(settings, stop.is_set),
        processed=ProcessedEvents(db.conninfo, stop.is_set),
        parking=PostgresParking(db.conninfo, settings.MAILER_GROUP_ID),
        dead_letters=KafkaDeadLetters(kafka),
        composer=DigestComposer(settings),
        consumer_factory=consumer,
        topic=kafka.KAFKA_TOPIC,
        group=settings.MAILER_GROUP_ID,
        bug_retries=policy.CONSUMER_BUG_RETRIES,
        stop_flag=stop,
        subscriptions=StoreSubscriptions(TodoStore(env=store_env(db))),
    )
