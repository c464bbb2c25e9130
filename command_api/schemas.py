"""Request and response bodies, split Create/Update/Public."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from contracts.task_schema import TaskPublic
from contracts.timezones import TimezoneName
from event_store.domain.model import (
    DEFAULT_TIMEZONE,
    TITLE_MAX_LENGTH,
    Task,
    User,
    ensure_storable,
    normalize_title,
)

# Declared in OpenAPI (as JSON Schema regexes) what the domain rules enforce: no NUL anywhere, and
# for a title at least one non-space character. Lone surrogates are refused too, but no regex
# says so that every engine accepts (JSON Schema validators refuse "\ud800" in a pattern).
_NO_NUL = r"^[^\u0000]*$"
# Not blank: one character outside every engine's `\s` (Python's adds \x1c-\x1f and \x85,
# JavaScript's \ufeff), exactly what event_store.domain.model.BLANKS trims.
_NO_NUL_NOT_BLANK = r"^[^\u0000]*[^\s\u0000\u001c-\u001f\u0085\ufeff][^\u0000]*$"


def _storable(field: str) -> AfterValidator:
    return AfterValidator(lambda text: ensure_storable(field, text))


# The domain's own rule (event_store.domain.model.normalize_title) runs as the validator, so the
# API and the aggregate can never disagree; the length bounds hold before and after trimming.
Title = Annotated[
    str,
    Field(
        min_length=1,
        max_length=TITLE_MAX_LENGTH,
        description=f"1-{TITLE_MAX_LENGTH} characters, trimmed; not blank; no NUL (\\u0000) and"
        " no lone surrogate",
        json_schema_extra={"pattern": _NO_NUL_NOT_BLANK},
    ),
    AfterValidator(normalize_title),
]
_DECLARE_NO_NUL = {"pattern": _NO_NUL}

# An address as people type it (RFC 5322 dot-atom, ASCII, a dotted domain with a letters-only
# top level). Enforced by exactly the regex OpenAPI declares, so a client can check it up front;
# email_validator's `format: email` accepts and refuses things no schema can describe.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$"
)
Email = Annotated[
    str,
    Field(
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="An email address (case does not matter: it is stored lower-cased)",
    ),
]
Password = Annotated[
    str,
    Field(min_length=8, max_length=1024, json_schema_extra=_DECLARE_NO_NUL),
    _storable("password"),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Body):
    email: Email
    password: Password
    timezone: TimezoneName = Field(
        default=DEFAULT_TIMEZONE,
        description="The user's IANA time zone (the browser's); the daily digest comes after its"
        " midnight. Default UTC; anything not in the tz database is a 422",
    )


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


def patch_schema(schema: dict[str, Any]) -> None:
    """As the validators below: at least one field, and a field given is never null."""
    schema["minProperties"] = 1
    for prop in schema["properties"].values():
        alternatives = prop.pop("anyOf", None)
        if alternatives:
            prop.update(next(a for a in alternatives if a != {"type": "null"}))
        prop.pop("default", None)


class PatchBody(_Body):
    """A PATCH body: every field optional, at least one given, and none given as null (the
    rules patch_schema declares)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=patch_schema)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Leaving a field out means "unchanged"; an explicit null would mean nothing at all.
        if value is None:
            raise ValueError("leave the field out instead of sending null")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(f"give at least one of: {', '.join(type(self).model_fields)}")
        return self


class TaskUpdate(PatchBody):
    title: Title | None = None
    done: bool | None = None


def task_public(task: Task, *, trusted: bool = False) -> TaskPublic:
    """`trusted`: skip validation (the aggregate's own typed state, about to be serialised
    straight away: the hot path of POST /tasks)."""
    fields: dict[str, Any] = {
        "id": task.id,
        "title": task.title,
        "done": task.done,
        "created_at": task.created_on,
        "done_at": task.done_at,
        "version": task.version,
    }
    return TaskPublic.model_construct(**fields) if trusted else TaskPublic(**fields)
