"""GET /tasks, /tasks/{id}, /tasks/{id}/history, /activity, /me. Few dependencies on purpose:
FastAPI's dependency solving costs more per request than the query itself, so adapters are taken
from app.state directly."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from common.auth import CurrentUserId
from common.openapi import error_response
from common.schemas import TaskPublic
from common.web import validation_error
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
from query_api.schemas import ActivityPage, MePublic, TaskHistory, TaskPage

router = APIRouter(tags=["queries"])

# 401, 500 and 503 are declared on every operation by common.web.declare_error_responses.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_response("X-Min-Position is not a store position (ASCII digits)"),
}
_OK = {
    "headers": {
        STALE_HEADER: {
            "description": "`true` when X-Min-Position was not reached in time (may be stale)",
            "schema": {"type": "string"},
        }
    }
}


def _json(body: str, stale: bool) -> Response:
    headers = {STALE_HEADER: "true"} if stale else None
    return Response(content=body, media_type="application/json", headers=headers)


_STALE_404 = {STALE_HEADER: "`true` when X-Min-Position was not reached in time (may be stale)"}


def _not_found(what: str, stale: bool) -> HTTPException:
    headers = {STALE_HEADER: "true"} if stale else None
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found", headers=headers)


@router.get(
    "/tasks",
    response_model=TaskPage,
    responses={**_ERRORS, 200: _OK},
)
async def list_tasks(
    request: Request,
    user_id: CurrentUserId,
    done: Annotated[bool | None, Query(description="Only done (true) or undone (false)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`next_cursor` of the previous page (opaque); a malformed one is a 422",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
    min_position: MinPosition = None,
) -> Response:
    """The user's tasks, newest first (ties by id), `limit` per page."""
    try:
        after = None if cursor is None else decode_cursor(cursor)
    except InvalidCursorError as e:
        # FastAPI's 422 shape, like every other 422: the field and what is wrong with it.
        raise validation_error(("query", "cursor"), str(e)) from e
    stale = await is_stale(request, user_id, min_position)
    rows = await read_model(request).list_tasks(user_id, done, after, limit + 1)
    page = rows[:limit]
    next_cursor = "null"
    if len(rows) > limit:
        _, created_at, task_id = page[-1]
        next_cursor = f'"{encode_cursor(created_at, task_id)}"'
    body = '{"items":[' + ",".join(row[0] for row in page) + '],"next_cursor":' + next_cursor + "}"
    return _json(body, stale)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskPublic,
    responses={
        **_ERRORS,
        200: _OK,
        404: error_response("No such task for this user", _STALE_404),
    },
)
async def get_task(
    request: Request, task_id: UUID, user_id: CurrentUserId, min_position: MinPosition = None
) -> Response:
    stale = await is_stale(request, user_id, min_position)
    body = await read_model(request).get_task(user_id, task_id)
    if body is None:
        raise _not_found("task", stale)
    return _json(body, stale)


@router.get(
    "/tasks/{task_id}/history",
    response_model=TaskHistory,
    responses={
        **_ERRORS,
        200: _OK,
        404: error_response("No such task for this user (a deleted one has a history)", _STALE_404),
    },
)
async def task_history(
    request: Request, task_id: UUID, user_id: CurrentUserId, min_position: MinPosition = None
) -> Response:
    """Every event of the task, oldest first, with what it changed; also for a deleted task."""
    stale = await is_stale(request, user_id, min_position)
    items = await read_model(request).task_history(user_id, task_id)
    if items is None:
        raise _not_found("task", stale)
    return _json('{"items":' + items + "}", stale)


@router.get(
    "/activity",
    response_model=ActivityPage,
    responses={**_ERRORS, 200: _OK},
)
async def activity(
    request: Request,
    user_id: CurrentUserId,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`next_cursor` of the previous page (opaque); a malformed one is a 422",
            json_schema_extra={"pattern": ACTIVITY_CURSOR_PATTERN},
        ),
    ] = None,
    min_position: MinPosition = None,
) -> Response:
    """The user's task events across all their tasks, newest first, `limit` per page."""
    try:
        before = None if cursor is None else decode_activity_cursor(cursor)
    except InvalidCursorError as e:
        raise validation_error(("query", "cursor"), str(e)) from e
    stale = await is_stale(request, user_id, min_position)
    rows = await read_model(request).activity(user_id, before, limit + 1)
    page = rows[:limit]
    next_cursor = f'"{encode_activity_cursor(page[-1][1])}"' if len(rows) > limit else "null"
    body = '{"items":[' + ",".join(row[0] for row in page) + '],"next_cursor":' + next_cursor + "}"
    return _json(body, stale)


@router.get(
    "/me",
    response_model=MePublic,
    responses={
        **_ERRORS,
        200: _OK,
        404: error_response("The user is not (yet) in the read model", _STALE_404),
    },
)
async def me(
    request: Request, user_id: CurrentUserId, min_position: MinPosition = None
) -> Response:
    """The user, their preferences and counts of their tasks (deleted ones excluded)."""
    stale = await is_stale(request, user_id, min_position)
    body = await read_model(request).get_me(user_id)
    if body is None:
        raise _not_found("user", stale)
    return _json(body, stale)
