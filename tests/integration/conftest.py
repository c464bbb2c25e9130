"""Fixtures every integration module may take, beside tests/conftest.py's (a fresh database and
fresh topics)."""

from __future__ import annotations

import pytest

from runtime.settings import DatabaseSettings
from tests.support.read_side import migrate


@pytest.fixture
def read_db(db_settings: DatabaseSettings) -> DatabaseSettings:
    """A fresh database with the read model's schema."""
    migrate(db_settings)
    return db_settings
