"""What every pure ASGI middleware of the APIs shares (pure ASGI rather than Starlette's
BaseHTTPMiddleware: no task and no stream per request). An HTTP request is its business; any other
scope (lifespan, websocket) and the requests it lets by go to the app untouched.

runtime.tracing.TraceMiddleware has the same shape but stays on its own: runtime does not depend
on Starlette (the workers import it too)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.lets_by(scope):
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    def lets_by(self, scope: Scope) -> bool:
        """Whether this HTTP request goes to the app untouched (none, unless a subclass says)."""
        return False

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request, which the middleware passes on to `self.app` as it sees fit."""
        raise NotImplementedError
