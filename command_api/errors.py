"""Domain errors → HTTP answers, always JSON `{"detail": ...}` (422 in FastAPI's validation shape,
naming the field)."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from event_store.domain.model import (
    EmailAlreadyRegisteredError,
    InvalidTextError,
    TaskNotFoundError,
    TaskStateError,
    UserNotFoundError,
)
from event_store.store_errors import ConcurrentChangeError, VersionConflictError
from http_api.errors import AsciiJSONResponse

_STATUS_AND_DETAIL: dict[type[Exception], tuple[int, str | None]] = {
    EmailAlreadyRegisteredError: (status.HTTP_409_CONFLICT, "email already registered"),
    TaskNotFoundError: (status.HTTP_404_NOT_FOUND, "task not found"),
    UserNotFoundError: (status.HTTP_404_NOT_FOUND, "user not found"),
    VersionConflictError: (status.HTTP_409_CONFLICT, None),
    ConcurrentChangeError: (status.HTTP_409_CONFLICT, None),
    TaskStateError: (status.HTTP_409_CONFLICT, None),
}


def install_domain_error_handlers(app: FastAPI) -> None:
    for exc_type, (code, detail) in _STATUS_AND_DETAIL.items():

        async def handler(
            request: Request, exc: Exception, code: int = code, detail: str | None = detail
        ) -> JSONResponse:
            return JSONResponse(status_code=code, content={"detail": detail or str(exc)})

        app.add_exception_handler(exc_type, handler)

    async def invalid_text(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidTextError)
        error = {"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}
        return AsciiJSONResponse(status_code=422, content={"detail": [error]})

    app.add_exception_handler(InvalidTextError, invalid_text)
