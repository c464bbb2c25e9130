"""`POST /tasks` without the framework's per-request plumbing, for the ordinary request (issue 12).

Creating a task is the command API's hot path, and under load the event loop spent about two
thirds of its time in FastAPI's and Starlette's per-request machinery (included-router dispatch,
dependency solving, the Request object, validating the returned model again, merging headers)
rather than in the command. This route sits ahead of the FastAPI route and does only what the
command needs, with the same parts: the same token check (app.state.tokens), the same body model
(TaskCreate, validated from `json.loads` exactly as FastAPI does), the same store call, the same
response model and headers.

It takes only a request it can answer with a 201: `Content-Type: application/json`, a bearer
token the verifier accepts, a body TaskCreate accepts. Anything else (no or bad token, bad JSON, a
422, another content type) is handed, with its body, to the FastAPI route, which answers it as
it always did. Once the command is running, errors propagate as from any route: the app's
exception handlers answer them (503 when the store is unreachable or does not answer in time).
The OpenAPI spec is the FastAPI route's: this one is not in the schema.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from starlette._utils import get_route_path
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from command_api.responses import POSITION_HEADER
from command_api.schemas import TaskCreate, task_public
from event_store.application import TodoStore
from http_api.auth import InvalidTokenError, TokenVerifier

PATH = "/tasks"
_HANDED_ON = "command_api.fast_create.handed_on"  # scope key: let the FastAPI route answer


class FastCreateTaskRoute(Route):
    def __init__(self, fallback: ASGIApp) -> None:
        """`fallback`: the app's router, which routes a handed-on request to the FastAPI route."""
        super().__init__(PATH, _FastCreateTask(fallback), methods=["POST"], include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # A plain comparison, not the path regex: this runs first for every request. A wrong
        # method must reach the FastAPI routes (405 + Allow); a handed-on request, its route.
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or get_route_path(scope) != PATH
            or scope.get(_HANDED_ON)
        ):
            return Match.NONE, {}
        # `route`: the metrics' route label (FastAPI's router only sets it for its own routes).
        return Match.FULL, {"endpoint": self.endpoint, "path_params": {}, "route": self}


class _FastCreateTask:
    def __init__(self, fallback: ASGIApp) -> None:
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before sending its body: nothing to answer
        app_state = scope["app"].state
        user_id = _user_id(scope, app_state.tokens)
        command = _command(scope, body) if user_id is not None else None
        if user_id is None or command is None:
            await self._fallback({**scope, _HANDED_ON: True}, _replay(body, receive), send)
            return
        store: TodoStore = app_state.store
        saved = await store.create_task_async(user_id, command.title)
        content = task_public(saved.aggregate, trusted=True).model_dump_json().encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (POSITION_HEADER.lower().encode(), str(saved.position).encode()),
            (b"etag", f'"{saved.aggregate.version}"'.encode()),
        ]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _user_id(scope: Scope, tokens: TokenVerifier) -> UUID | None:
    # Read as http_api.auth's CurrentUserId reads it (Starlette decodes headers as latin-1).
    scheme, _, token = (_header(scope, b"authorization") or b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return tokens.user_id(token)
    except InvalidTokenError:
        return None


def _command(scope: Scope, body: bytes) -> TaskCreate | None:
    if _header(scope, b"content-type") != b"application/json":
        return None
    try:
        return TaskCreate.model_validate(json.loads(body))
    except Exception:  # whatever it is, the FastAPI route answers it (400, 422...)
        return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; None if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's body once more, for the FastAPI route; then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict[str, Any](await receive())

    return replay
