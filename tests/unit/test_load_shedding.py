"""Past its bound on requests in progress an API answers 503 + Retry-After with a JSON body at
once, instead of queueing without bound (which, measured, ended in reset connections); probes are
never shed, and the bound frees up as requests finish."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from http_api.load_shedding import OVERLOADED_DETAIL, InFlightLimit


def held_app(release: asyncio.Event, limit: int, all_in: asyncio.Event) -> InFlightLimit:
    entered = 0

    async def slow(_request: Request) -> JSONResponse:
        nonlocal entered
        entered += 1
        if entered == limit:
            all_in.set()
        await release.wait()
        return JSONResponse({"ok": True})

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/tasks", slow, methods=["POST"]), Route("/health", health)])
    return InFlightLimit(app, limit=limit)


def test_a_request_past_the_bound_is_answered_503_with_retry_after_and_json_at_once() -> None:
    async def scenario() -> None:
        release, all_in = asyncio.Event(), asyncio.Event()
        app = held_app(release, limit=2, all_in=all_in)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            held = [asyncio.create_task(client.post("/tasks")) for _ in range(2)]
            await all_in.wait()

            shed = await client.post("/tasks")
            probe = await client.get("/health")

            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert shed.json() == {"detail": OVERLOADED_DETAIL}
            assert probe.status_code == 200  # probes are never shed
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert app.in_flight == 0
            assert (await client.post("/tasks")).status_code == 200  # the bound is free again

    asyncio.run(scenario())


def test_a_failing_request_frees_its_place_too() -> None:
    async def boom(_request: Request) -> JSONResponse:
        raise RuntimeError("a bug")

    app = InFlightLimit(Starlette(routes=[Route("/tasks", boom, methods=["POST"])]), limit=1)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for _ in range(3):
                assert (await client.post("/tasks")).status_code == 500

    asyncio.run(scenario())
    assert app.in_flight == 0
