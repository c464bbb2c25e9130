"""Finding 1 of issue 8, from the read side: whatever title the command API accepts, PostgreSQL's
read tables can hold, so the projector can never dead-letter an accepted task as bad data. Any text
hypothesis can build (NUL, surrogates, controls, astral characters) either is refused by the
command API's schema or fits the `tasks` table as is."""

from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from command_api.schemas import TaskCreate
from runtime.settings import DatabaseSettings

pytestmark = pytest.mark.integration

# Every code point, surrogates included (what a JSON "\\ud800" escape can produce).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


def test_every_title_the_command_api_accepts_fits_the_read_tables(
    read_db: DatabaseSettings,
) -> None:
    refused: list[str] = []
    with psycopg.connect(read_db.conninfo, autocommit=True) as conn:

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(raw=any_text | st.sampled_from(["a\x00b", "\ud800", "ok \U0001f389", "\x01\x7f"]))
        def check(raw: str) -> None:
            try:
                title = TaskCreate.model_validate({"title": raw}).title
            except ValidationError:
                refused.append(raw)
                return
            conn.execute(
                "INSERT INTO tasks (id, user_id, title, done, created_at, version, position)"
                " VALUES (%s, %s, %s, false, now(), 1, 1)",
                (uuid4(), uuid4(), title),
            )  # a DataError here would fail the test: an accepted title the read side refuses

        check()
    assert "a\x00b" in refused and "\ud800" in refused
