"""Read-your-writes as a header and a helper; adapters come from app.state (composition root)."""

from __future__ import annotations

from typing import Annotated, Protocol
from uuid import UUID

from fastapi import Header, Request

from common.settings import QueryApiSettings
from query_api.repository import ReadModel

STALE_HEADER = "X-Stale"


class Waiter(Protocol):
    async def wait_for(self, user_id: UUID, position: int, max_wait: float) -> bool: ...


MinPosition = Annotated[
    int | None,
    Header(
        alias="X-Min-Position",
        ge=0,
        description="Store position returned by the command API (X-Event-Position): wait until"
        " this user's read model has applied it, up to a bounded time.",
    ),
]


def read_model(request: Request) -> ReadModel:
    reads: ReadModel = request.app.state.read_model
    return reads


async def is_stale(request: Request, user_id: UUID, min_position: int | None) -> bool:
    """Wait (bounded) for the user's position; True when it was not reached in time."""
    if min_position is None:
        return False
    waiter: Waiter = request.app.state.waiter
    settings: QueryApiSettings = request.app.state.settings
    max_wait = settings.READ_YOUR_WRITES_TIMEOUT_SECONDS
    return not await waiter.wait_for(user_id, min_position, max_wait)
