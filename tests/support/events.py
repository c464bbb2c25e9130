"""Public events built for tests: a consistent stream of them (History), or the fields every event
carries, filled for tests that build one event by hand and care only about its own fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from contracts.events import (
    DailyDigestRequested,
    DigestStats,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskRenamed,
    TaskReopened,
    TaskRestored,
    UserPreferencesChanged,
    UserRegistered,
    public_event_id,
)

OCCURRED_AT = datetime(2026, 11, 23, tzinfo=UTC)


def envelope_fields(position: int = 1) -> dict[str, Any]:
    """Fresh ids, a fixed time, and the first version of the aggregate at `position`."""
    return {
        "event_id": uuid4(),
        "occurred_at": OCCURRED_AT,
        "user_id": uuid4(),
        "position": position,
        "aggregate_version": 1,
    }


T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class History:
    """Builds a consistent stream of public events, as the relay would publish them."""

    def __init__(self) -> None:
        self.position = 0
        self.versions: dict[UUID, int] = {}

    def _env(self, aggregate: UUID, user: UUID) -> dict[str, object]:
        self.position += 1
        version = self.versions.get(aggregate, 0) + 1
        self.versions[aggregate] = version
        return {
            "event_id": public_event_id(aggregate, version),
            "occurred_at": T0 + timedelta(seconds=self.position),
            "user_id": user,
            "position": self.position,
            "aggregate_version": version,
        }

    def register(self, user: UUID, email: str = "ada@example.com") -> UserRegistered:
        return UserRegistered(**self._env(user, user), email=email)

    def preferences(
        self, user: UUID, timezone: str = "Asia/Kolkata", digest_enabled: bool = True
    ) -> UserPreferencesChanged:
        return UserPreferencesChanged(
            **self._env(user, user), timezone=timezone, digest_enabled=digest_enabled
        )

    def create(self, user: UUID, task: UUID, title: str = "write tests") -> TaskCreated:
        return TaskCreated(**self._env(task, user), task_id=task, title=title)

    def user_with_task(
        self, user: UUID, task: UUID, title: str = "write tests"
    ) -> list[UserRegistered | TaskCreated]:
        """The start of most histories: the user registers, then creates the task."""
        return [self.register(user), self.create(user, task, title)]

    def rename(self, user: UUID, task: UUID, title: str) -> TaskRenamed:
        return TaskRenamed(**self._env(task, user), task_id=task, title=title)

    def complete(self, user: UUID, task: UUID) -> TaskCompleted:
        env = self._env(task, user)
        return TaskCompleted(**env, task_id=task, done_at=env["occurred_at"])

    def reopen(self, user: UUID, task: UUID) -> TaskReopened:
        return TaskReopened(**self._env(task, user), task_id=task)

    def delete(self, user: UUID, task: UUID) -> TaskDeleted:
        return TaskDeleted(**self._env(task, user), task_id=task)

    def restore(self, user: UUID, task: UUID) -> TaskRestored:
        return TaskRestored(**self._env(task, user), task_id=task)

    def digest(self, user: UUID) -> DailyDigestRequested:
        digest = uuid4()
        return DailyDigestRequested(
            **self._env(digest, user),
            digest_id=digest,
            digest_date=T0.date(),
            email="ada@example.com",
            stats=DigestStats(total=1, done=0, undone=1),
            undone_titles=["write tests"],
        )
