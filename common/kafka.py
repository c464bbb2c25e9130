"""Kafka client configuration, defined once for every producer and consumer."""

from __future__ import annotations

from typing import Any

from common.settings import KafkaSettings


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        # Idempotent: retries never duplicate or reorder within a partition (implies acks=all).
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # Give up on a message after this long; the relay then re-sends from its checkpoint.
        "message.timeout.ms": 30000,
    }
    config.update(overrides)
    return config


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "group.id": group_id,
        # Offsets are committed by hand, only after the effect of a message is durable.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config
