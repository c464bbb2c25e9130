"""GET /tasks, /tasks/{id}, /tasks/{id}/history, /activity, /me. Few dependencies on purpose:
FastAPI's dependency solving costs more per request than the query itself, so adapters are taken
from app.state directly, and what every route does (wait for X-Min-Position, read, answer the
JSON PostgreSQL rendered, or 404) is two plain functions, `_found` and `_page`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from contracts.task_schema import TaskPublic
from http_api.auth import CurrentUserId
from http_api.errors import validation_error
from http_api.openapi import error_response
from query_api.cursor import (
    ACTIVITY_CURSOR_PATTERN,
    CURSOR_PATTERN,
    InvalidCursorError,
    decode_activity_cursor,
    decode_cursor,
    encode_activity_cursor,
    encode_cursor,
)
from query_api.deps import STALE_HEADER, MinPosition, is_stale, read_model
from query_api.repository import ReadModel
from query_api.schemas import ActivityPage, MePublic, TaskHistory, TaskPage

router = APIRouter(tags=["queries"])

_STALE_DOC = "`true` when X-Min-Position was not reached in time (may be stale)"
_NO_TASK = "No such task for this user"
_NO_USER = "The user is not (yet) in the read model"


def _responses(not_found: str | None = None) -> dict[int | str, dict[str, Any]]:
    """What a read answers besides its body: X-Stale on a 200 (and on a 404, where there is one),
    400 for a malformed X-Min-Position. 401, 500 and 503 are declared on every operation by
    http_api.openapi.declare_error_responses."""
    responses: dict[int | str, dict[str, Any]] = {
        400: error_response("X-Min-Position is not a store position (ASCII digits)"),
        200: {"headers": {STALE_HEADER: {"description": _STALE_DOC, "schema": {"type": "string"}}}},
    }
    if not_found is not None:
        responses[404] = error_response(not_found, {STALE_HEADER: _STALE_DOC})
    return responses


Limit = Annotated[int, Query(ge=1, le=200)]


def _cursor_query(pattern: str) -> Any:
    return Query(
        max_length=200,
        description="`next_cursor` of the previous page (opaque); a malformed one is a 422",
        json_schema_extra={"pattern": pattern},
    )


def _json(body: str, stale: bool) -> Response:
    headers = {STALE_HEADER: "true"} if stale else None
    return Response(content=body, media_type="application/json", headers=headers)


async def _found(
    request: Request,
    user_id: UUID,
    min_position: str | None,
    what: str,
    read: Callable[[ReadModel], Awaitable[str | None]],
    wrap: Callable[[str], str] = lambda body: body,
) -> Response:
    """One thing of the user's: read after the (bounded) wait for X-Min-Position; 404 if absent."""
    stale = await is_stale(request, user_id, min_position)
    body = await read(read_model(request))
    if body is None:
        headers = {STALE_HEADER: "true"} if stale else None
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found", headers=headers)
    return _json(wrap(body), stale)


async def _page[C, R: tuple[Any, ...]](
    request: Request,
    user_id: UUID,
    min_position: str | None,
    cursor: tuple[str | None, Callable[[str], C]],
    limit: int,
    read: Callable[[ReadModel, C | None, int], Awaitable[Sequence[R]]],
    cursor_after: Callable[[R], str],
) -> Response:
    """A page of `limit` rows (item JSON first) after `cursor` (the raw query value and its
    decoder: a malformed one is a 422, before any wait). One row more is read: it says whether
    there is a next page, whose cursor `cursor_after` makes from the page's last row."""
    raw, decode = cursor
    try:
        after = None if raw is None else decode(raw)
    except InvalidCursorError as e:
        # FastAPI's 422 shape, like every other 422: the field and what is wrong with it.
        raise validation_error(("query", "cursor"), str(e)) from e
    stale = await is_stale(request, user_id, min_position)
    rows = await read(read_model(request), after, limit + 1)
    page = rows[:limit]
    next_cursor = f'"{cursor_after(page[-1])}"' if len(rows) > limit else "null"
    body = '{"items":[' + ",".join(row[0] for row in page) + '],"next_cursor":' + next_cursor + "}"
    return _json(body, stale)


@router.get("/tasks", response_model=TaskPage, responses=_responses())
async def list_tasks(
    request: Request,
    user_id: CurrentUserId,
    done: Annotated[bool | None, Query(description="Only done (true) or undone (false)")] = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, _cursor_query(CURSOR_PATTERN)] = None,
    min_position: MinPosition = None,
) -> Response:
    """The user's tasks, newest first (ties by id), `limit` per page; with `done`, only the done
    or only the undone ones."""
    return await _page(
        request,
        user_id,
        min_position,
        (cursor, decode_cursor),
        limit,
        lambda reads, after, n: reads.list_tasks(user_id, done, after, n),
        lambda row: encode_cursor(row[1], row[2]),
    )


@router.get("/tasks/{task_id}", response_model=TaskPublic, responses=_responses(_NO_TASK))
async def get_task(
    request: Request, task_id: UUID, user_id: CurrentUserId, min_position: MinPosition = None
) -> Response:
    return await _found(
        request, user_id, min_position, "task", lambda reads: reads.get_task(user_id, task_id)
    )


@router.get(
    "/tasks/{task_id}/history",
    response_model=TaskHistory,
    responses=_responses(not_found="No such task for this user (a deleted one has a history)"),
)
async def task_history(
    request: Request, task_id: UUID, user_id: CurrentUserId, min_position: MinPosition = None
) -> Response:
    """Every event of the task, oldest first, with what it changed; also for a deleted task."""
    return await _found(
        request,
        user_id,
        min_position,
        "task",
        lambda reads: reads.task_history(user_id, task_id),
        wrap=lambda items: '{"items":' + items + "}",
    )


@router.get("/activity", response_model=ActivityPage, responses=_responses())
async def activity(
    request: Request,
    user_id: CurrentUserId,
    limit: Limit = 50,
    cursor: Annotated[str | None, _cursor_query(ACTIVITY_CURSOR_PATTERN)] = None,
    min_position: MinPosition = None,
) -> Response:
    """The user's task events across all their tasks, newest first, `limit` per page."""
    return await _page(
        request,
        user_id,
        min_position,
        (cursor, decode_activity_cursor),
        limit,
        lambda reads, before, n: reads.activity(user_id, before, n),
        lambda row: encode_activity_cursor(row[1]),
    )


@router.get("/me", response_model=MePublic, responses=_responses(_NO_USER))
async def me(
    request: Request, user_id: CurrentUserId, min_position: MinPosition = None
) -> Response:
    """The user, their preferences and counts of their tasks (deleted ones excluded)."""
    return await _found(request, user_id, min_position, "user", lambda reads: reads.get_me(user_id))
