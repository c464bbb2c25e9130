"""The fault-injection test's clients: one thread per user drives the real command API over HTTP
(register, log in, then create / rename / complete / reopen / delete tasks) and keeps a model of
what the acknowledged commands must have done.

Honest bookkeeping of outcomes:
- 2xx: acknowledged. The model applies it; its store position (X-Event-Position) is kept, so the
  checks can find its event in the store and on Kafka.
- connection refused (the API is down): nothing was sent; retried until the API is back.
- no answer after sending (the API died with the request in flight), or a 5xx: the outcome is
  unknown. The task is marked uncertain and left alone; at the end the store, the source of
  truth, says what became of it (either outcome is accepted). A 5xx is also counted: none may
  occur.
- 409/404: refused; the model follows the answer (409: nothing happened; 404: uncertain).
- 429/503 with Retry-After: waited out and retried (throttling, not an error: 503 is counted).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx

PASSWORD = "chaos-password-1"  # a throwaway test user's


@dataclass
class TaskModel:
    id: UUID
    user_id: UUID
    title: str
    done: bool = False
    deleted: bool = False
    version: int = 1

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.user_id, self.title, self.done, self.deleted, self.version)


@dataclass(frozen=True)
class Acked:
    """An acknowledged command: its event must be at `position` in the store."""

    event_type: str
    aggregate_id: UUID
    user_id: UUID
    position: int


class UnknownOutcomeError(Exception):
    """The request may or may not have been carried out."""


@dataclass
class Tally:
    """Shared by every client thread (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0  # task commands sent at least once
    acknowledged: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # every 5xx answer
    unknown: int = 0
    refused_connections: int = 0
    acked: list[Acked] = field(default_factory=list)
    tasks: dict[UUID, TaskModel] = field(default_factory=dict)
    uncertain: set[UUID] = field(default_factory=set)  # task ids whose last outcome is unknown
    unknown_creates: list[tuple[UUID, str]] = field(default_factory=list)  # (user, title)
    users: dict[str, UUID] = field(default_factory=dict)  # email → id


class Gate:
    """Task commands are numbered; command n may be sent once n < allowed. The chaos schedule
    raises `allowed` as it goes, so every fault lands while commands are in flight."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.allowed = total
        self._next = 0
        self._cond = threading.Condition()

    def allow(self, upto: int) -> None:
        with self._cond:
            self.allowed = min(self.total, max(self.allowed, upto))
            self._cond.notify_all()

    def take(self) -> int | None:
        """The next command's number, or None when all are issued."""
        with self._cond:
            while self._next < self.total and self._next >= self.allowed:
                self._cond.wait(0.5)
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next - 1

    @property
    def taken(self) -> int:
        return self._next


def user_id_from_token(token: str) -> UUID:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return UUID(claims["sub"])


class Client:
    """One user's session against the command API."""

    def __init__(self, base_url: str, email: str, tally: Tally, gate: Gate, seed: int) -> None:
        self.email = email
        self.tally = tally
        self.gate = gate
        self.rng = random.Random(seed)
        # No keep-alive: a request to a dead API is refused (certainly not carried out) instead of
        # being written into a dead pooled connection (outcome unknown).
        self.http = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(60.0, connect=5.0),
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.token = ""
        self.user_id: UUID | None = None
        self.mine: list[UUID] = []  # live, certain tasks of this user

    # --- HTTP with honest outcomes ------------------------------------------------------------

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        deadline = time.monotonic() + 180
        while True:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            try:
                response = self.http.request(method, path, json=body, headers=headers)
            except httpx.ConnectError:
                with self.tally.lock:
                    self.tally.refused_connections += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            except httpx.TransportError as e:
                raise UnknownOutcomeError(f"{method} {path}: {type(e).__name__}") from e
            with self.tally.lock:
                self.tally.statuses[response.status_code] += 1
                if response.status_code >= 500:
                    self.tally.server_errors.append(
                        f"{method} {path} → {response.status_code} {response.text[:200]}"
                    )
            if response.status_code in (429, 503) and "retry-after" in response.headers:
                time.sleep(min(5.0, float(response.headers["retry-after"] or 1)))
                continue
            if response.status_code >= 500:
                raise UnknownOutcomeError(f"{method} {path}: {response.status_code}")
            if response.status_code == 401 and path.startswith("/tasks"):
                self.login()
                continue
            return response

    def call_until_known(self, path: str) -> httpx.Response:
        """POST our credentials to an auth route until the outcome is known (both routes are
        safe to repeat)."""
        while True:
            try:
                return self.call("POST", path, {"email": self.email, "password": PASSWORD})
            except UnknownOutcomeError:
                continue

    def sign_up(self) -> None:
        """Register (a retry after an unknown outcome may find the email taken: then the first
        attempt did it), then log in."""
        response = self.call_until_known("/auth/register")
        if response.status_code not in (201, 409):
            raise AssertionError(f"register {self.email}: {response.status_code} {response.text}")
        self.login()
        assert self.user_id is not None
        with self.tally.lock:
            self.tally.users[self.email] = self.user_id

    def login(self) -> None:
        self.token = ""
        response = self.call_until_known("/auth/login")
        assert response.status_code == 200, f"login: {response.status_code} {response.text}"
        self.token = response.json()["access_token"]
        self.user_id = user_id_from_token(self.token)

    # --- the workload --------------------------------------------------------------------------

    def run(self) -> None:
        self.sign_up()
        while (number := self.gate.take()) is not None:
            self.one_command(number)
        self.http.close()

    def one_command(self, number: int) -> None:
        with self.tally.lock:
            self.tally.issued += 1
        live = [t for t in self.mine if t not in self.tally.uncertain]
        roll = self.rng.random()
        if len(live) < 3 or roll < 0.3:
            self.create(f"{self.email.split('@')[0]} task {number}")
            return
        task = self.tally.tasks[self.rng.choice(live)]
        if roll < 0.5:
            self.change(task, "task.renamed", {"title": f"{task.title.split(' ~')[0]} ~{number}"})
        elif roll < 0.9:
            self.change(
                task, "task.reopened" if task.done else "task.completed", {"done": not task.done}
            )
        else:
            self.change(task, "task.deleted", None)

    def create(self, title: str) -> None:
        assert self.user_id is not None
        try:
            response = self.call("POST", "/tasks", {"title": title})
        except UnknownOutcomeError:
            with self.tally.lock:
                self.tally.unknown += 1
                self.tally.unknown_creates.append((self.user_id, title))
            return
        assert response.status_code == 201, f"create: {response.status_code} {response.text}"
        body = response.json()
        task = TaskModel(UUID(body["id"]), self.user_id, body["title"], version=body["version"])
        assert task.title == title
        self.mine.append(task.id)
        self.acknowledge(task, "task.created", response)

    def change(self, task: TaskModel, event_type: str, body: dict[str, Any] | None) -> None:
        method = "DELETE" if body is None else "PATCH"
        try:
            response = self.call(method, f"/tasks/{task.id}", body)
        except UnknownOutcomeError:
            with self.tally.lock:
                self.tally.unknown += 1
                self.tally.uncertain.add(task.id)
            return
        if response.status_code == 409:
            return  # refused: nothing happened, the model stays as it is
        if response.status_code == 404:
            with self.tally.lock:
                self.tally.uncertain.add(task.id)
            return
        assert response.status_code in (200, 204), (
            f"{method}: {response.status_code} {response.text}"
        )
        if body is None:
            task.deleted = True
            task.version += 1
            self.mine.remove(task.id)
        else:
            answer = response.json()
            task.title, task.done, task.version = answer["title"], answer["done"], answer["version"]
        self.acknowledge(task, event_type, response)

    def acknowledge(self, task: TaskModel, event_type: str, response: httpx.Response) -> None:
        assert self.user_id is not None
        position = int(response.headers["x-event-position"])
        with self.tally.lock:
            self.tally.acknowledged += 1
            self.tally.tasks[task.id] = task
            self.tally.acked.append(Acked(event_type, task.id, self.user_id, position))
