"""Request and response bodies, split Create/Update/Public."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from common.schemas import TaskPublic
from event_store.domain.model import TITLE_MAX_LENGTH, Task, User

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH)
]
Password = Annotated[str, Field(min_length=8, max_length=1024)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Body):
    email: EmailStr
    password: Password


class UserLogin(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class UserPublic(BaseModel):
    id: UUID
    email: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Self:
        return cls(id=user.id, email=user.email, created_at=user.created_on)


class TokenPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret
    expires_in: int


class TaskCreate(_Body):
    title: Title


class TaskUpdate(_Body):
    title: Title | None = None
    done: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if self.title is None and self.done is None:
            raise ValueError("give at least one of: title, done")
        return self


def task_public(task: Task) -> TaskPublic:
    return TaskPublic(
        id=task.id,
        title=task.title,
        done=task.done,
        created_at=task.created_on,
        done_at=task.done_at,
        version=task.version,
    )
