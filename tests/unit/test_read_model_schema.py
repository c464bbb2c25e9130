"""contracts.read_model is the one declaration of the read model: the projector's row classes,
column lists and PostgreSQL types are derived from it and refuse to drift from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from contracts.read_model import column_list, json_fields, metadata, pg_types, tasks, users
from projector.db import LIVE, REBUILD
from projector.rows import TASK_COLUMNS, TaskRow, UserRow, _mirror, _TableRow


def test_a_row_class_that_does_not_mirror_its_table_is_refused_at_import() -> None:
    @dataclass(slots=True)
    class Misordered(_TableRow):
        user_id: str
        id: str

    with pytest.raises(TypeError, match="does not mirror tasks"):
        _mirror(Misordered, tasks)


def test_a_row_gives_its_values_in_the_tables_column_order() -> None:
    task_id, user_id, created = uuid4(), uuid4(), datetime(2026, 12, 3, tzinfo=UTC)
    row = TaskRow(task_id, user_id, "t", False, created, None, 1, False, 7)
    assert dict(zip(TASK_COLUMNS, row.as_tuple(), strict=True)) == {
        "id": task_id, "user_id": user_id, "title": "t", "done": False, "created_at": created,
        "done_at": None, "version": 1, "deleted": False, "position": 7,
    }  # fmt: skip


def test_every_declared_column_has_a_postgresql_type_name() -> None:
    for table in metadata.tables.values():
        assert len(pg_types(table)) == len(table.columns)
    assert pg_types(users, ["id", "position", "created_at"]) == ("uuid", "int8", "timestamptz")


def test_a_query_naming_a_column_the_declaration_lacks_fails_when_it_is_built() -> None:
    assert column_list(users, "id", "email", alias="u") == "u.id, u.email"
    assert json_fields(tasks, "id", "title") == "'id', id, 'title', title"
    with pytest.raises(KeyError):
        column_list(users, "nickname")


def test_the_live_and_rebuild_table_names_come_from_the_declared_tables() -> None:
    assert LIVE.users == users.name and LIVE.tasks == tasks.name
    assert REBUILD.users == "users_rebuild" and REBUILD.task_events == "task_events_rebuild"
    assert UserRow.COLUMNS[0] == "id"
