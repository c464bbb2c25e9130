"""Request and response bodies, split Create/Update/Public."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator

from common.schemas import TaskPublic
from event_store.domain.model import (
    TITLE_MAX_LENGTH,
    Task,
    User,
    ensure_storable,
    normalize_title,
)

# Declared in OpenAPI (JSON Schema regex) what the domain rules below enforce: no NUL anywhere, and
# for a title at least one non-space character. Lone surrogates are refused too (not expressible).
_NO_NUL = r"^[^\u0000]*$"
_NO_NUL_NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def _storable(field: str) -> AfterValidator:
    return AfterValidator(lambda text: ensure_storable(field, text))


# The domain's own rule (event_store.domain.model.normalize_title) runs as the validator, so the
# API and the aggregate can never disagree; the length bounds hold before and after trimming.
Title = Annotated[
    str,
    Field(
        min_length=1,
        max_length=TITLE_MAX_LENGTH,
        description=f"1-{TITLE_MAX_LENGTH} characters, trimmed; not blank",
        json_schema_extra={"pattern": _NO_NUL_NOT_BLANK},
    ),
    AfterValidator(normalize_title),
]
_DECLARE_NO_NUL = {"pattern": _NO_NUL}
Password = Annotated[
    str,
    Field(min_length=8, max_length=1024, json_schema_extra=_DECLARE_NO_NUL),
    _storable("password"),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Body):
    email: EmailStr
    password: Password


class UserLogin(_Body):
    email: Annotated[
        str, Field(max_length=320, json_schema_extra=_DECLARE_NO_NUL), _storable("email")
    ]
    password: Annotated[
        str, Field(max_length=1024, json_schema_extra=_DECLARE_NO_NUL), _storable("password")
    ]


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
