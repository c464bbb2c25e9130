"""The fixtures of the mail tests, loaded by `pytest_plugins` in the test modules that use them:
a real SMTP server, and the digest system (read tables, store, relay, topic) on the test's database.
A module that needs more (users, a batch already run) overrides `system` by asking for this one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.digest import DigestSystem, digest_system
from tests.support.smtp import SmtpServer, running_smtp_server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture
def system(db_settings: DatabaseSettings, kafka_settings: KafkaSettings) -> Iterator[DigestSystem]:
    with digest_system(db_settings, kafka_settings) as system:
        yield system
