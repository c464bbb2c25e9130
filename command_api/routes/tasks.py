from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status

from command_api.deps import ExpectedVersion, Store
from command_api.responses import set_etag, set_position
from command_api.schemas import TaskCreate, TaskUpdate, task_public
from common.auth import CurrentUserId
from common.schemas import TaskPublic

router = APIRouter(prefix="/tasks", tags=["tasks"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such task for this user (unknown, deleted or not yours)"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "If-Match did not match the task's current version"}
}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskPublic)
async def create_task(
    body: TaskCreate, user_id: CurrentUserId, store: Store, response: Response
) -> TaskPublic:
    saved = await store.create_task_async(user_id, body.title)
    set_position(response, saved.position)
    set_etag(response, saved.aggregate.version)
    return task_public(saved.aggregate)


@router.patch("/{task_id}", response_model=TaskPublic, responses={**NOT_FOUND, **CONFLICT})
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
    "/{task_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT}
)
def delete_task(
    task_id: UUID, user_id: CurrentUserId, store: Store, expected: ExpectedVersion
) -> Response:
    saved = store.delete_task(user_id, task_id, expected_version=expected)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    set_position(response, saved.position)
    return response
