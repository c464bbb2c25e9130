"""Composition root of the projector process: the shared consumer loop (consuming.loop) with the
projector's handler and settings, its heartbeat and health endpoint; real adapters by default,
fakes in unit tests (which build the loop alone with build_projector)."""

from __future__ import annotations

from typing import Any

from consuming.loop import ConsumerLoop, DeadLetterSink, LoopSettings
from consuming.process import ConsumerProcess
from consuming.source import KafkaSource, MessageSource
from contracts.dead_letters import KafkaDeadLetters
from projector.consumer import Projection, ProjectorHandler
from projector.settings import ProjectorSettings
from projector.sink import PostgresProjection
from runtime.health import Heartbeat
from runtime.settings import ConsumerSettings, DatabaseSettings, HealthSettings, KafkaSettings


def bootstrap(
    db: DatabaseSettings,
    kafka: KafkaSettings,
    settings: ProjectorSettings,
    health: HealthSettings,
    **adapters: Any,
) -> ConsumerProcess:
    """The whole process: the loop (adapters as in build_projector) with its heartbeat, and the
    health endpoint on PROJECTOR_HEALTH_PORT."""
    heartbeat = Heartbeat(health.HEALTH_STALE_SECONDS)
    loop = build_projector(db, kafka, settings, heartbeat=heartbeat, **adapters)
    return ConsumerProcess(loop, "projector", health.HEALTH_HOST, health.PROJECTOR_HEALTH_PORT)


def build_projector(
    db: DatabaseSettings,
    kafka: KafkaSettings,
    settings: ProjectorSettings,
    *,
    source: MessageSource | None = None,
    projection: Projection | None = None,
    dead_letters: DeadLetterSink | None = None,
    policy: ConsumerSettings | None = None,
    heartbeat: Heartbeat | None = None,
    **consumer_overrides: Any,
) -> ConsumerLoop:
    session_ms = int(settings.PROJECTOR_SESSION_TIMEOUT_SECONDS * 1000)
    overrides = {
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(1000, session_ms // 5),
        **consumer_overrides,
    }
    group = settings.PROJECTOR_GROUP_ID
    return ConsumerLoop(
        source or KafkaSource(kafka, group, **overrides),
        ProjectorHandler(projection or PostgresProjection(db.conninfo, group), group),
        dead_letters or KafkaDeadLetters(kafka),
        LoopSettings(
            service="projector",
            consumer=group,
            batch_size=settings.PROJECTOR_BATCH_SIZE,
            poll_timeout=settings.PROJECTOR_POLL_TIMEOUT_SECONDS,
            freshness_hops=True,
        ),
        policy or ConsumerSettings(),
        heartbeat=heartbeat,
    )
