from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status

from command_api.deps import ExpectedVersion, Store
from command_api.responses import POSITION_HEADER, position_header, set_etag, set_position
from command_api.schemas import TaskCreate, TaskUpdate, task_public
from contracts.task_schema import TaskPublic
from http_api.auth import CurrentUserId
from http_api.openapi import error_response

router = APIRouter(prefix="/tasks", tags=["tasks"])

_WRITTEN_HEADERS = {
    **position_header("reads", "nothing changed"),
    "ETag": {"description": 'The task\'s new version, e.g. `"2"`', "schema": {"type": "string"}},
}
_CHANGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: error_response("If-Match is not a version number, or the body is not UTF-8 JSON"),
    404: error_response("No such task for this user (unknown, deleted or not yours)"),
    409: error_response(
        "If-Match did not match the task's current version, the change makes no sense in the"
        " task's state (e.g. completing a done task), or the task kept changing concurrently"
    ),
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses={201: {"headers": _WRITTEN_HEADERS}},
)
async def create_task(
    body: TaskCreate, user_id: CurrentUserId, store: Store, response: Response
) -> TaskPublic:
    saved = await store.create_task_async(user_id, body.title)
    set_position(response, saved.position)
    set_etag(response, saved.aggregate.version)
    return task_public(saved.aggregate)


@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses={200: {"headers": _WRITTEN_HEADERS}, **_CHANGE_ANSWERS},
)
def update_task(
    task_id: UUID,
    body: TaskUpdate,
    user_id: CurrentUserId,
    store: Store,
    expected: ExpectedVersion,
    response: Response,
) -> TaskPublic:
    saved = store.update_task(
        user_id, task_id, title=body.title, done=body.done, expected_version=expected
    )
    set_position(response, saved.position)
    set_etag(response, saved.aggregate.version)
    return task_public(saved.aggregate)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {"headers": {POSITION_HEADER: _WRITTEN_HEADERS[POSITION_HEADER]}},
        **_CHANGE_ANSWERS,
    },
)
def delete_task(
    task_id: UUID, user_id: CurrentUserId, store: Store, expected: ExpectedVersion
) -> Response:
    saved = store.delete_task(user_id, task_id, expected_version=expected)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    set_position(response, saved.position)
    return response


@router.post(
    "/{task_id}/restore",
    response_model=TaskPublic,
    responses={
        200: {"headers": _WRITTEN_HEADERS},
        **_CHANGE_ANSWERS,
        404: error_response("No such task for this user (unknown or not yours)"),
        409: error_response(
            "The task is not deleted, If-Match did not match the task's current version, or the"
            " task kept changing concurrently"
        ),
    },
)
def restore_task(
    task_id: UUID,
    user_id: CurrentUserId,
    store: Store,
    expected: ExpectedVersion,
    response: Response,
) -> TaskPublic:
    """Undo a delete: the same task (same id and created_at) comes back, its version bumped."""
    saved = store.restore_task(user_id, task_id, expected_version=expected)
    set_position(response, saved.position)
    set_etag(response, saved.aggregate.version)
    return task_public(saved.aggregate)
