"""Read-your-writes as a header and a helper; adapters come from app.state (composition root)."""

from __future__ import annotations

import re
import time
from typing import Annotated, Protocol
from uuid import UUID

from fastapi import Header, HTTPException, Request, status

from query_api.repository import ReadModel
from query_api.settings import QueryApiSettings
from runtime import metrics

STALE_HEADER = "X-Stale"


class Waiter(Protocol):
    async def wait_for(self, user_id: UUID, position: int, max_wait: float) -> bool: ...


# A store position in a header (X-Min-Position, Last-Event-ID). ASCII digits only: int() would
# also take "²" or "٣" (and " 7", "+7", "7_0").
POSITION_PATTERN = r"^[0-9]{1,18}$"
_POSITION = re.compile(POSITION_PATTERN, re.ASCII)


def parse_position(raw: str | None, header: str) -> int | None:
    """The position a header carries (None without the header); anything but ASCII digits is the
    client's mistake, a 400 naming the header (declared, not enforced, as a pattern in OpenAPI so
    that it is a 400 rather than FastAPI's 422)."""
    if raw is None:
        return None
    if _POSITION.fullmatch(raw.strip()) is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"{header} must be a store position (ASCII digits)",
        )
    return int(raw.strip())


# A plain header parameter, parsed in is_stale (a dependency would cost more per request).
MinPosition = Annotated[
    str | None,
    Header(
        alias="X-Min-Position",
        description="Store position returned by the command API (X-Event-Position): wait until"
        " this user's read model has applied it, up to a bounded time. Anything but ASCII digits"
        " is a 400.",
        json_schema_extra={"pattern": POSITION_PATTERN},
    ),
]


def read_model(request: Request) -> ReadModel:
    reads: ReadModel = request.app.state.read_model
    return reads


async def is_stale(request: Request, user_id: UUID, raw_min_position: str | None) -> bool:
    """Wait (bounded) for the user's position; True when it was not reached in time. A malformed
    X-Min-Position is the client's mistake: 400."""
    min_position = parse_position(raw_min_position, "X-Min-Position")
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
