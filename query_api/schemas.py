"""Response bodies of the query API (the JSON itself is assembled by PostgreSQL for speed; these
models document it in OpenAPI and tests validate real responses against them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from contracts.task_schema import TaskPublic


class TaskPage(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None = Field(
        description="Opaque; pass it back as `cursor` for the next page. null on the last page."
    )


class TaskStats(BaseModel):
    total: int
    done: int
    undone: int


class MePublic(BaseModel):
    id: UUID
    email: str
    created_at: datetime
    timezone: str = Field(description="IANA time zone name (`PATCH /me` on the command API)")
    digest_enabled: bool = Field(description="Whether the daily digest email is sent")
    stats: TaskStats


TaskEventType = Literal[
    "task.created",
    "task.renamed",
    "task.completed",
    "task.reopened",
    "task.deleted",
    "task.restored",
]


class TaskChanges(BaseModel):
    """What the event changed; only the fields it set are present (`{}` for reopened, deleted,
    restored)."""

    title: str | None = Field(default=None, description="task.created, task.renamed: the title")
    done_at: datetime | None = Field(default=None, description="task.completed: when")


class TaskEventPublic(BaseModel):
    type: TaskEventType = Field(description="The public event's type (docs/events.md)")
    task_id: UUID
    occurred_at: datetime
    position: int = Field(ge=1, description="Store position of the event (global order)")
    version: int = Field(ge=1, description="The task's version after this event")
    changes: TaskChanges


class TaskHistory(BaseModel):
    items: list[TaskEventPublic] = Field(description="Oldest first")


class ActivityItem(TaskEventPublic):
    task_title: str = Field(description="The task's current title (it may have been renamed since)")


class ActivityPage(BaseModel):
    items: list[ActivityItem] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Opaque; pass it back as `cursor` for the next page. null on the last page."
    )
