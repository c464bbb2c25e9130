"""The two load generators of bench_login_flood.py, each run in a process of its own beside the
server (`bench_login_flood.py --role tasks|flood ...`): task commands at a fixed rate, measured from
their scheduled start, and a flood of bad logins, each from its own address."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import httpx

# Connections sending the task commands: enough that a slow answer does not delay the next
# scheduled one (at 100/s and ~10 ms each, ~1 is busy at a time).
TASK_CONNECTIONS = 32


class KeepAliveConnection:
    """A bare HTTP/1.1 keep-alive client on asyncio streams: the measuring side must cost next to
    no CPU on a shared machine (httpx costs ~1 ms per request, and more as connections pile up)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def task_load(url: str, token: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: request n is due at start + n/rate and its latency counts from then, whichever
    of the connections sends it (a stalled server cannot hide behind fewer requests)."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    by_second: dict[int, list[float]] = {}
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    total = int(rate * seconds)
    slots = iter(range(total))
    start = time.perf_counter()

    async def worker() -> None:
        connection = KeepAliveConnection(host, int(port))
        for n in slots:
            scheduled = start + n / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            body = json.dumps({"title": f"bench task {n}"}).encode()
            try:
                statuses[await connection.post("/tasks", body, headers)] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                statuses[0] += 1
                connection = KeepAliveConnection(host, int(port))
            latencies.append(time.perf_counter() - scheduled)
            by_second.setdefault(int(scheduled - start), []).append(latencies[-1])

    await asyncio.gather(*(worker() for _ in range(TASK_CONNECTIONS)))
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "max_ms": max(latencies) * 1000,
        "statuses": dict(statuses),
        "max_ms_by_second": [round(max(by_second[k]) * 1000) for k in sorted(by_second)],
    }


async def login_flood(url: str, concurrency: int) -> dict[str, Any]:
    """Until SIGTERM; then no new login is sent and the ones in flight are awaited, so that when
    this process exits the server's bcrypt queue is empty (the next "without" phase is clean)."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(256)}"
            try:
                response = await client.post(
                    "/auth/login",
                    json={"email": f"{uuid.uuid4().hex}@example.com", "password": "a bad guess"},
                    headers={"X-Forwarded-For": address, "X-Real-IP": address},
                )
                statuses[response.status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:
        loops = [asyncio.create_task(loop(client)) for _ in range(concurrency)]
        await stop.wait()
        stopped = time.perf_counter()
        await asyncio.gather(*loops)
    return {
        "statuses": dict(statuses),
        "seconds": time.perf_counter() - started,
        "drain_seconds": time.perf_counter() - stopped,
    }
