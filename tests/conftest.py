"""Shared fixtures. Integration tests talk to the real PostgreSQL and Kafka started by
`make test` (infra/postgres.sh, infra/kafka.sh); each test gets its own database and topics, so
tests never see each other's data and can share the servers with a developer's `make run`."""

from __future__ import annotations

import os

# Test-only settings, before anything reads the environment.
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("BCRYPT_ROUNDS", "4")

from collections.abc import Iterator

import pytest

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.infra import cluster_bootstrap_servers, fresh_database, fresh_topics

# `KAFKA_BROKERS=3 make test`: every test and service process lists all three nodes.
if (servers := cluster_bootstrap_servers()) is not None:
    os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", servers)


@pytest.fixture
def db_settings() -> Iterator[DatabaseSettings]:
    with fresh_database() as settings:
        yield settings


@pytest.fixture
def kafka_settings() -> Iterator[KafkaSettings]:
    with fresh_topics() as settings:
        yield settings
