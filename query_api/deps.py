"""Read-your-writes as a header and a helper; adapters come from app.state (composition root)."""

from __future__ import annotations

import re
import time
from typing import Annotated, Protocol
from uuid import UUID

from fastapi import Header, HTTPException, Request, status

from common import metrics
from common.settings import QueryApiSettings
from query_api.repository import ReadModel

STALE_HEADER = "X-Stale"


class Waiter(Protocol):
    async def wait_for(self, user_id: UUID, position: int, max_wait: float) -> bool: ...


# ASCII digits only: int() would also take "²" or "٣" (and " 7", "+7", "7_0").
MIN_POSITION_PATTERN = r"^[0-9]{1,18}$"
_MIN_POSITION = re.compile(MIN_POSITION_PATTERN, re.ASCII)


# A plain header parameter, parsed in is_stale (a dependency would cost more per request).
MinPosition = Annotated[
    str | None,
    Header(
        alias="X-Min-Position",
        description="Store position returned by the command API (X-Event-Position): wait until"
        " this user's read model has applied it, up to a bounded time. Anything but ASCII digits"
        " is a 400.",
        # Declared for clients; checked in is_stale so that a bad value is a 400, not a 422.
        json_schema_extra={"pattern": MIN_POSITION_PATTERN},
    ),
]


def parse_min_position(raw: str | None) -> int | None:
    if raw is None:
        return None
    if _MIN_POSITION.fullmatch(raw.strip()) is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="X-Min-Position must be a store position (ASCII digits)",
        )
    return int(raw.strip())


def read_model(request: Request) -> ReadModel:
    reads: ReadModel = request.app.state.read_model
    return reads


async def is_stale(request: Request, user_id: UUID, raw_min_position: str | None) -> bool:
    """Wait (bounded) for the user's position; True when it was not reached in time. A malformed
    X-Min-Position is the client's mistake: 400."""
    min_position = parse_min_position(raw_min_position)
    if min_position is None:
        return False
    waiter: Waiter = request.app.state.waiter
    settings: QueryApiSettings = request.app.state.settings
    max_wait = settings.READ_YOUR_WRITES_TIMEOUT_SECONDS
    started = time.monotonic()
    try:
        return not await waiter.wait_for(user_id, min_position, max_wait)
    finally:
        # The read-your-writes hop only: a stream's idle waits (query_api.stream) are not hops.
        metrics.observe_hop("wait", time.monotonic() - started)
