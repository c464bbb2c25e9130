"""HTTP representations shared by both APIs: a task looks the same whether it comes back from a
command (command API) or a query (query API)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel


class TaskPublic(BaseModel):
    id: UUID
    title: str
    done: bool
    created_at: datetime
    done_at: datetime | None
    version: int
