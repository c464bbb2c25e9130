"""Composition root of the projector process: real adapters by default, fakes in unit tests."""

from __future__ import annotations

from typing import Any

from common.settings import DatabaseSettings, KafkaSettings
from projector.consumer import (
    DeadLetterSink,
    KafkaDeadLetters,
    KafkaSource,
    MessageSource,
    Projection,
    Projector,
)
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
    **consumer_overrides: Any,
) -> Projector:
    session_ms = int(settings.PROJECTOR_SESSION_TIMEOUT_SECONDS * 1000)
    overrides = {
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(1000, session_ms // 5),
        **consumer_overrides,
    }
    return Projector(
        source or KafkaSource(kafka, settings.PROJECTOR_GROUP_ID, **overrides),
        projection or PostgresProjection(db.conninfo),
        dead_letters or KafkaDeadLetters(kafka),
        batch_size=settings.PROJECTOR_BATCH_SIZE,
        poll_timeout=settings.PROJECTOR_POLL_TIMEOUT_SECONDS,
    )
