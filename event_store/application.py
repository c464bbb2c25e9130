"""The write model's Application: repository and unit of work for every command.

Each command loads what it needs, asks the aggregate to change (the domain checks the rules) and
records the new events atomically. Answers carry the notification id ("position") of the last event
so the read side can offer read-your-writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from event_store.domain.model import (
    DEFAULT_TIMEZONE,
    DailyDigest,
    EmailAlreadyRegisteredError,
    EmailClaim,
    Task,
    TaskNotFoundError,
    User,
    UserNotFoundError,
    claim_id_for,
    digest_id_for,
)
from event_store.recording import RecordingApplication
from event_store.store_errors import CONFLICT_RETRIES, ConcurrentChangeError, VersionConflictError
from runtime.settings import DatabaseSettings

# The stored topic of a user's preference changes (TodoStore.digest_enabled reads the latest).
PREFERENCES_TOPIC = get_topic(User.PreferencesChanged)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Saved[T]:
    aggregate: T
    position: int | None  # None when the command changed nothing


class DigestRequest(Protocol):
    """What the scheduler knows of one user's day (see scheduler/batch.py)."""

    @property
    def user_id(self) -> UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def done(self) -> int: ...
    @property
    def undone_titles(self) -> Sequence[str]: ...
    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True)
class DigestDetails:
    """A DigestRequest by value."""

    user_id: UUID
    email: str
    total: int
    done: int
    undone_titles: Sequence[str]
    timezone: str = DEFAULT_TIMEZONE


def _digest_of(digest_date: date, request: DigestRequest) -> DailyDigest:
    return DailyDigest(
        user_id=request.user_id,
        digest_date=digest_date,
        email=request.email,
        total=request.total,
        done=request.done,
        undone_titles=list(request.undone_titles),
        timezone=request.timezone,
    )


def store_env(db: DatabaseSettings) -> dict[str, str]:
    """eventsourcing's own settings, derived from ours so there is one source of configuration."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": db.POSTGRES_DB,
        "POSTGRES_HOST": db.POSTGRES_HOST,
        "POSTGRES_PORT": str(db.POSTGRES_PORT),
        "POSTGRES_USER": db.POSTGRES_USER,
        "POSTGRES_PASSWORD": db.POSTGRES_PASSWORD.get_secret_value(),
        "POSTGRES_POOL_SIZE": str(db.POSTGRES_POOL_SIZE),
        "POSTGRES_MAX_OVERFLOW": str(db.POSTGRES_POOL_SIZE),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_SCHEMA": "public",
        # The DB-function insert path skips the table lock that keeps commit order: keep it off.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "CREATE_TABLE": "y",
    }


class TodoStore(RecordingApplication):
    """The commands (the recording, the queries and the backends: event_store.recording)."""

    name = "TodoStore"  # events table: todostore_events

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        batch_max: int = 64,
        command_timeout: float = 10.0,
    ) -> None:
        super().__init__(env, batch_max=batch_max, command_timeout=command_timeout)
        self._clock = clock

    # --- users -------------------------------------------------------------------------------

    def register_user(
        self, email: str, password_hash: str, timezone: str = DEFAULT_TIMEZONE
    ) -> Saved[User]:
        if self._exists(claim_id_for(email)):
            raise EmailAlreadyRegisteredError(email)
        user = User.register(email=email, password_hash=password_hash, timezone=timezone)
        claim = EmailClaim(email=user.email, user_id=user.id)
        try:
            # The user event last: the returned position is the published one, so a read with
            # X-Min-Position waits for user.registered (the claim is internal, never published).
            position = self._commit(claim, user)
        except IntegrityError as e:  # a concurrent registration claimed the email first
            raise EmailAlreadyRegisteredError(email) from e
        return Saved(user, position)

    def find_user_by_email(self, email: str) -> User | None:
        try:
            claim: EmailClaim = self.repository.get(claim_id_for(email))
        except AggregateNotFoundError:
            return None
        return self._get(User, claim.user_id)

    def get_user(self, user_id: UUID) -> User | None:
        return self._get(User, user_id)

    def digest_enabled(self, user_id: UUID) -> bool:
        """The user's current digest preference, from their latest PreferencesChanged event alone
        (one indexed row, no aggregate to rebuild: the mailer asks for every email). True for a
        user without one (the default) and for a user the store does not know."""
        event = self._latest_event(user_id, PREFERENCES_TOPIC)
        if event is None:
            return True
        return bool(event.digest_enabled)

    def change_preferences(
        self, user_id: UUID, *, timezone: str | None = None, digest_enabled: bool | None = None
    ) -> Saved[User]:
        """Record new preferences (timezone: an IANA name, checked by the caller); position None
        when they were already so. A concurrent change is retried on the fresh state."""
        for _attempt in range(CONFLICT_RETRIES):
            user = self._get(User, user_id)
            if user is None:
                raise UserNotFoundError(str(user_id))
            if not user.change_preferences(timezone=timezone, digest_enabled=digest_enabled):
                return Saved(user, None)
            try:
                return Saved(user, self._commit(user))
            except IntegrityError:
                continue  # someone changed this user between our read and our write
        raise ConcurrentChangeError(CONFLICT_RETRIES)

    # --- tasks -------------------------------------------------------------------------------

    def create_task(self, user_id: UUID, title: str) -> Saved[Task]:
        task = Task.create(user_id=user_id, title=title)
        return Saved(task, self._commit(task))

    async def create_task_async(self, user_id: UUID, title: str) -> Saved[Task]:
        """create_task for async callers: creating needs no read, only the commit is awaited."""
        task = Task.create(user_id=user_id, title=title)
        events = task.collect_events()
        with self._trace_tags.tag(events):
            recordings = await self._committer.commit_async(events)
        return Saved(task, recordings[-1].notification.id)

    def get_task(self, user_id: UUID, task_id: UUID, *, deleted_too: bool = False) -> Task:
        task = self._get(Task, task_id)
        if task is None or task.user_id != user_id or (task.deleted and not deleted_too):
            raise TaskNotFoundError(str(task_id))
        return task

    def update_task(
        self,
        user_id: UUID,
        task_id: UUID,
        *,
        title: str | None = None,
        done: bool | None = None,
        expected_version: int | None = None,
    ) -> Saved[Task]:
        def change(task: Task) -> None:
            if title is not None and title.strip() != task.title:
                task.rename(user_id=user_id, title=title)
            if done is True and not task.done:
                task.complete(user_id=user_id, done_at=self._clock())
            elif done is False and task.done:
                task.reopen(user_id=user_id)

        return self._change_task(user_id, task_id, change, expected_version)

    def delete_task(
        self, user_id: UUID, task_id: UUID, expected_version: int | None = None
    ) -> Saved[Task]:
        return self._change_task(
            user_id, task_id, lambda t: t.delete(user_id=user_id), expected_version
        )

    def restore_task(
        self, user_id: UUID, task_id: UUID, expected_version: int | None = None
    ) -> Saved[Task]:
        """Undo a delete (the domain refuses a task that is not deleted)."""
        return self._change_task(
            user_id,
            task_id,
            lambda t: t.restore(user_id=user_id),
            expected_version,
            deleted_too=True,
        )

    # --- digests -----------------------------------------------------------------------------

    def request_daily_digest(
        self, digest_date: date, request: DigestRequest
    ) -> Saved[DailyDigest] | None:
        """Record the digest for (user, date) once; None if it was already recorded."""
        if self._exists(digest_id_for(request.user_id, digest_date)):
            return None
        digest = _digest_of(digest_date, request)
        try:
            return Saved(digest, self._commit(digest))
        except IntegrityError:  # another scheduler replica recorded it first
            return None

    def request_daily_digests(
        self, digest_date: date, requests: Sequence[DigestRequest]
    ) -> list[Saved[DailyDigest] | None]:
        """Record many digests in one transaction (the nightly batch's fast path); None for each
        one already recorded. If a concurrent replica recorded some of them in the meantime, the
        combined save fails as a whole and each is settled one by one."""
        ids = [digest_id_for(r.user_id, digest_date) for r in requests]
        existing = self._existing(ids)
        digests = [
            _digest_of(digest_date, r)
            for r, digest_id in zip(requests, ids, strict=True)
            if digest_id not in existing
        ]
        events: list[Any] = [e for d in digests for e in d.collect_events()]
        try:
            recordings = self._commit_events(events)
        except IntegrityError:
            return [self.request_daily_digest(digest_date, r) for r in requests]
        saved = {
            d.id: Saved(d, rec.notification.id) for d, rec in zip(digests, recordings, strict=True)
        }
        return [saved.get(digest_id) for digest_id in ids]

    # --- plumbing ----------------------------------------------------------------------------

    def _change_task(
        self,
        user_id: UUID,
        task_id: UUID,
        change: Callable[[Task], None],
        expected_version: int | None,
        *,
        deleted_too: bool = False,
    ) -> Saved[Task]:
        for _attempt in range(CONFLICT_RETRIES):
            task = self.get_task(user_id, task_id, deleted_too=deleted_too)
            if expected_version is not None and task.version != expected_version:
                raise VersionConflictError(expected_version, task.version)
            change(task)
            try:
                return Saved(task, self._commit(task))
            except IntegrityError:
                # Someone saved this task between our read and our write. With an explicit
                # expectation that is the client's conflict; otherwise re-run on the fresh state.
                if expected_version is not None:
                    current = self.get_task(user_id, task_id, deleted_too=deleted_too).version
                    raise VersionConflictError(expected_version, current) from None
        raise ConcurrentChangeError(CONFLICT_RETRIES)
