"""Composition root of the projector process: real adapters by default, fakes in unit tests."""

from __future__ import annotations

from typing import Any

from common.dead_letters import KafkaDeadLetters
from common.poison import Backoff
from common.settings import ConsumerSettings, DatabaseSettings, KafkaSettings
from projector.consumer import DeadLetterSink, Projection, Projector
from projector.kafka_source import KafkaSource, MessageSource
from projector.settings import ProjectorSettings
from projector.sink import PostgresProjection


def build_projector(
    db: DatabaseSettings,
    kafka: KafkaSettings,
    settings: ProjectorSettings,
    *,
    source: MessageSource | None = None,
    projection: Projection | None = None,
    dead_letters: DeadLetterSink | None = None,
    policy: ConsumerSettings | None = None,
    **consumer_overrides: Any,
) -> Projector:
    policy = policy or ConsumerSettings()
    session_ms = int(settings.PROJECTOR_SESSION_TIMEOUT_SECONDS * 1000)
    overrides = {
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(1000, session_ms // 5),
        **consumer_overrides,
    }
    group = settings.PROJECTOR_GROUP_ID
    return Projector(
        source or KafkaSource(kafka, group, **overrides),
        projection or PostgresProjection(db.conninfo, group),
        dead_letters or KafkaDeadLetters(kafka),
        consumer=group,
        batch_size=settings.PROJECTOR_BATCH_SIZE,
        poll_timeout=settings.PROJECTOR_POLL_TIMEOUT_SECONDS,
        backoff=Backoff.from_settings(policy),
        bug_retries=policy.CONSUMER_BUG_RETRIES,
    )
