"""The rows the projector folds events into: an in-memory slice of the read model.

One typed class per table the handlers change, shaped as contracts.read_model declares the table:
the field order is checked against the declaration at import (a column added there and not here
fails at once, not as a misplaced value in the database), and each class's column list and
`as_tuple` (its values in column order, for the projector's `unnest` arrays and binary COPY) come
from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import Table

from contracts.events import TaskEvent
from contracts.read_model import DEFAULT_TIMEZONE, column_names, task_events, tasks, users


class _TableRow:
    """A row of a declared table; `_mirror` fills in its columns and `as_tuple`."""

    __slots__ = ()
    COLUMNS: ClassVar[tuple[str, ...]]

    def as_tuple(self) -> tuple[Any, ...]:
        """The values in the table's column order."""
        raise NotImplementedError  # replaced by _mirror


@dataclass(slots=True)
class UserRow(_TableRow):
    id: UUID
    email: str
    created_at: datetime
    version: int
    position: int
    timezone: str = DEFAULT_TIMEZONE
    digest_enabled: bool = True


@dataclass(slots=True)
class TaskRow(_TableRow):
    id: UUID
    user_id: UUID
    title: str
    done: bool
    created_at: datetime
    done_at: datetime | None
    version: int
    deleted: bool
    position: int


@dataclass(slots=True)
class TaskEventRow(_TableRow):
    position: int
    user_id: UUID
    task_id: UUID
    type: str
    occurred_at: datetime
    version: int
    changes: dict[str, Any]  # what the event changed, as JSON (e.g. {"title": ...})


def _mirror(row_class: type[_TableRow], table: Table) -> tuple[str, ...]:
    fields = tuple(f.name for f in dataclasses.fields(row_class))  # type: ignore[arg-type]
    columns = column_names(table)
    if fields != columns:
        raise TypeError(f"{row_class.__name__} {fields} does not mirror {table.name} {columns}")
    row_class.COLUMNS = columns
    # setattr: mypy refuses assigning to a method.
    setattr(row_class, "as_tuple", _tuple_of(columns))  # noqa: B010
    return columns


def _tuple_of(columns: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """`lambda self: (self.a, self.b, ...)` compiled for these columns (as dataclasses compiles
    __init__): as fast as written out, 3-4x faster than attrgetter on slots (per row of every
    batch and COPY). The names are the declaration's column names, checked to be identifiers."""
    if not all(c.isidentifier() for c in columns):
        raise ValueError(f"not Python identifiers: {columns}")
    body = "".join(f"self.{c}, " for c in columns)
    namespace: dict[str, Any] = {}
    exec(f"def as_tuple(self):\n    return ({body})", namespace)  # noqa: S102
    return namespace["as_tuple"]  # type: ignore[no-any-return]


USER_COLUMNS = _mirror(UserRow, users)
TASK_COLUMNS = _mirror(TaskRow, tasks)
TASK_EVENT_COLUMNS = _mirror(TaskEventRow, task_events)


@dataclass
class Rows:
    """The rows a batch may touch (absent key = no such row), plus what the batch changed."""

    users: dict[UUID, UserRow] = field(default_factory=dict)
    tasks: dict[UUID, TaskRow] = field(default_factory=dict)
    positions: dict[UUID, int] = field(default_factory=dict)
    changed_users: set[UUID] = field(default_factory=set)
    changed_tasks: set[UUID] = field(default_factory=set)
    task_events: list[TaskEventRow] = field(default_factory=list)  # to insert (history)
    gaps: int = 0
    duplicates: int = 0

    def clear_changes(self) -> None:
        self.positions.clear()
        self.changed_users.clear()
        self.changed_tasks.clear()
        self.task_events.clear()

    def record(self, e: TaskEvent, changes: dict[str, Any]) -> None:
        """Add an applied task event to the history."""
        self.task_events.append(
            TaskEventRow(
                e.position,
                e.user_id,
                e.task_id,
                e.type,
                e.occurred_at,
                e.aggregate_version,
                changes,
            )
        )
