"""Response bodies of the query API (the JSON itself is assembled by PostgreSQL for speed; these
models document it in OpenAPI and tests validate real responses against them)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from common.schemas import TaskPublic


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
