"""GET /stream: the user's own task changes as Server-Sent Events, so every open tab and device
stays in step without reloading.

Fed by the projection's commits, never by polling per connection: a stream waits on the same
position notifications as read-your-writes (query_api.freshness — one LISTEN per process), and
when the user's position moves it reads the user's task rows changed since the last message, in
one query that also returns the user's position (one snapshot, so no change can slip between
the two). Each message carries `id: <store position>` of the change, so a client that reconnects
with `Last-Event-ID` gets exactly what it missed: the latest state of every task changed since,
in store order (intermediate states of one task are folded into its latest, which is what a
client syncing a list needs). Comments keep idle connections open through proxies.

Only the token's user is ever read: another user's changes cannot reach a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from http_api.auth import CurrentUserId
from http_api.openapi import error_response
from query_api.deps import POSITION_PATTERN, parse_position, read_model
from query_api.settings import QueryApiSettings
from runtime import metrics

router = APIRouter(tags=["queries"])

_PAGE = 500  # rows per read; a long outage's backlog is sent in several reads
_EVENTS_DOC = """`text/event-stream`. Messages, each with `id: <store position>`:

- `event: ready` — first, without Last-Event-ID: the stream runs from here (load lists now);
- `event: task` — `data:` the task's new state (as `GET /tasks/{id}` answers it);
- `event: task_deleted` — `data: {"id": "<task id>"}`.

Comment lines (`: keepalive`) arrive every `QUERY_STREAM_HEARTBEAT_SECONDS` while idle.
Reconnect with `Last-Event-ID` (the last `id:` received) to get every change since, once."""


# Each message of the stream (what an SSE parser yields), as schemathesis checks it too.
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "its store position"},
        "event": {"type": "string", "enum": ["ready", "task", "task_deleted"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["id", "event", "data"],
}


class StreamLimits:
    """Open streams per user, bounded (a client opening streams in a loop is throttled)."""

    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._open: dict[UUID, int] = {}

    def open(self, user_id: UUID) -> Callable[[], None]:
        """Count one more stream for the user (429 over the limit); returns its release, which
        may be called more than once (the stream's end and the response's end both call it)."""
        if self._open.get(user_id, 0) >= self._per_user:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"at most {self._per_user} open streams per user",
                headers={"Retry-After": "5"},
            )
        self._open[user_id] = self._open.get(user_id, 0) + 1
        metrics.QUERY_STREAMS_OPEN.inc()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._open.get(user_id, 1) - 1
            if left:
                self._open[user_id] = left
            else:
                self._open.pop(user_id, None)
            metrics.QUERY_STREAMS_OPEN.dec()

        return release

    def open_streams(self, user_id: UUID) -> int:
        return self._open.get(user_id, 0)


def _message(change: dict[str, Any]) -> str:
    task = change["task"]
    if change["deleted"]:
        return (
            f"id: {change['position']}\nevent: task_deleted\ndata: "
            + json.dumps({"id": task["id"]})
            + "\n\n"
        )
    return f"id: {change['position']}\nevent: task\ndata: {json.dumps(task)}\n\n"


async def _events(
    request: Request, user_id: UUID, after: int | None, release: Callable[[], None]
) -> AsyncGenerator[str, None]:
    settings: QueryApiSettings = request.app.state.settings
    reads = read_model(request)
    waiter = request.app.state.waiter
    heartbeat = settings.QUERY_STREAM_HEARTBEAT_SECONDS
    try:
        yield "retry: 2000\n\n"
        if after is None:
            # A new stream starts from now, and says where: a client (re)loads its lists once it
            # has this message, so nothing falls between its reads and the stream.
            after = (await reads.positions([user_id])).get(user_id, 0)
            yield f"id: {after}\nevent: ready\ndata: {{}}\n\n"
        while True:
            position, changes = await reads.changes_since(user_id, after, _PAGE)
            for change in changes:
                yield _message(change)
            if len(changes) == _PAGE:
                after = changes[-1]["position"]
                continue  # more to send at once
            after = max(after, position)
            if not await waiter.wait_for(user_id, after + 1, heartbeat):
                yield ": keepalive\n\n"
    finally:
        release()


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": _EVENTS_DOC,
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        },
        400: error_response("Last-Event-ID is not a store position (ASCII digits)"),
        429: error_response("Too many open streams for this user", {"Retry-After": "seconds"}),
    },
)
async def stream(
    request: Request,
    user_id: CurrentUserId,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The last `id:` received: resume after it, without loss or duplicates."
            " Anything but ASCII digits is a 400.",
            json_schema_extra={"pattern": POSITION_PATTERN},
        ),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events of the user's own task changes (see the 200 response)."""
    after = parse_position(last_event_id, "Last-Event-ID")
    limits: StreamLimits = request.app.state.stream_limits
    release = limits.open(user_id)
    return StreamingResponse(
        _events(request, user_id, after, release),
        media_type="text/event-stream",
        # no-transform / X-Accel-Buffering: no proxy may buffer or compress the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
        # Also when the client left before the first message (the generator never ran).
        background=BackgroundTask(release),
    )
