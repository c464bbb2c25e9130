"""Aggregates of the write model. No I/O here: time is passed in, persistence is the Application's.

Rules enforced by the domain raise `DomainError`s; the command API maps them to HTTP answers.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

TITLE_MAX_LENGTH = 500
_EMAIL_NAMESPACE = UUID("0b8f5a1e-7d51-4f0e-9d0a-6a3c5f1d2e90")
_DIGEST_NAMESPACE = UUID("c3a4f5d2-1b0e-4c7a-8e6f-2d9b0a1c3e5f")


class DomainError(Exception):
    """A command broke a rule of the domain."""


class EmailAlreadyRegisteredError(DomainError):
    pass


class UserNotFoundError(DomainError):
    """A token for a user the store does not know (never registered here)."""


class TaskNotFoundError(DomainError):
    """Unknown, deleted, or owned by someone else: all look the same from outside."""


class InvalidTextError(DomainError, ValueError):
    """Text the store and the read tables cannot hold as given. A ValueError too, so the same rule
    serves as a pydantic validator in the command API's schemas (one definition, one message)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


class InvalidTitleError(InvalidTextError):
    pass


class TaskStateError(DomainError):
    """A transition that makes no sense from the current state (e.g. completing a done task)."""


def unstorable_text_problem(text: str) -> str | None:
    """Why PostgreSQL (or the JSON on Kafka) could not hold `text`, or None. PostgreSQL text
    cannot contain NUL; a lone surrogate (JSON allows "\\ud800") cannot be encoded as UTF-8.
    Accepting either would record an event the read side must refuse: the user's data lost."""
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates (\\ud800-\\udfff)"
    return None


def ensure_storable(field: str, text: str, error: type[InvalidTextError] = InvalidTextError) -> str:
    problem = unstorable_text_problem(text)
    if problem is not None:
        raise error(field, problem)
    return text


def normalize_email(email: str) -> str:
    return ensure_storable("email", email).strip().lower()


# What trimming removes: Python's whitespace plus the BOM, i.e. both Python's and JavaScript's
# notion of `\s` (the command API declares the title's regex with it; see command_api.schemas).
BLANKS = "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + "\ufeff"


def normalize_title(title: str) -> str:
    cleaned = ensure_storable("title", title, InvalidTitleError).strip(BLANKS)
    if not 1 <= len(cleaned) <= TITLE_MAX_LENGTH:
        raise InvalidTitleError("title", f"must be 1-{TITLE_MAX_LENGTH} characters after trimming")
    return cleaned


DEFAULT_TIMEZONE = "UTC"


class User(Aggregate):
    """A registered person. The password hash never leaves the store (see event_store.public).

    Preferences (timezone, digest on/off) start as UTC and on; every change is one
    PreferencesChanged event carrying both values after the change, so a reader of a single event
    (the projector, the mailer) never needs the earlier ones. The timezone is an IANA name checked
    at the edge (command_api.schemas, with the tz database): the domain does no I/O."""

    @classmethod
    def register(cls, email: str, password_hash: str, timezone: str = DEFAULT_TIMEZONE) -> User:
        user = cls(email=normalize_email(email), password_hash=password_hash)
        user.change_preferences(timezone=timezone)
        return user

    class Registered(Aggregate.Created):
        email: str
        password_hash: str

    class PreferencesChanged(Aggregate.Event):
        timezone: str
        digest_enabled: bool

    @event(Registered)
    def __init__(self, email: str, password_hash: str) -> None:
        self.email = email
        self.password_hash = password_hash
        self.timezone = DEFAULT_TIMEZONE
        self.digest_enabled = True

    def change_preferences(
        self, *, timezone: str | None = None, digest_enabled: bool | None = None
    ) -> bool:
        """Record the new preferences; False (and no event) when nothing would change."""
        new_timezone = self.timezone if timezone is None else timezone
        new_enabled = self.digest_enabled if digest_enabled is None else digest_enabled
        if (new_timezone, new_enabled) == (self.timezone, self.digest_enabled):
            return False
        self._preferences_changed(timezone=new_timezone, digest_enabled=new_enabled)
        return True

    @event(PreferencesChanged)
    def _preferences_changed(self, timezone: str, digest_enabled: bool) -> None:
        self.timezone = timezone
        self.digest_enabled = digest_enabled


class EmailClaim(Aggregate):
    """Enforces unique emails on the write side: its id is derived from the normalized email, so a
    second registration of the same address collides on (id, version 1) in the same transaction
    that saves the user, and login can find the user straight from the store."""

    @staticmethod
    def create_id(email: str) -> UUID:
        return claim_id_for(email)

    class Claimed(Aggregate.Created):
        email: str
        user_id: UUID

    @event(Claimed)
    def __init__(self, email: str, user_id: UUID) -> None:
        self.email = email
        self.user_id = user_id


def claim_id_for(email: str) -> UUID:
    return uuid5(_EMAIL_NAMESPACE, normalize_email(email))


class Task(Aggregate):
    """Commands check the rules and normalise input, then trigger a past-tense event whose method
    only changes state (so replaying history never re-runs validation)."""

    @classmethod
    def create(cls, user_id: UUID, title: str) -> Task:
        return cls(user_id=user_id, title=normalize_title(title))

    # The event classes are declared so their fields are visible (and typed) to readers and mypy.
    class Created(Aggregate.Created):
        user_id: UUID
        title: str

    class Renamed(Aggregate.Event):
        user_id: UUID
        title: str

    class Completed(Aggregate.Event):
        user_id: UUID
        done_at: datetime

    class Reopened(Aggregate.Event):
        user_id: UUID

    class Deleted(Aggregate.Event):
        user_id: UUID

    class Restored(Aggregate.Event):
        user_id: UUID

    @event(Created)
    def __init__(self, user_id: UUID, title: str) -> None:
        self.user_id = user_id
        self.title = title
        self.done = False
        self.done_at: datetime | None = None
        self.deleted = False

    def rename(self, user_id: UUID, title: str) -> None:
        self._check_actor(user_id)
        self._renamed(user_id=user_id, title=normalize_title(title))

    def complete(self, user_id: UUID, done_at: datetime) -> None:
        self._check_actor(user_id)
        if self.done:
            raise TaskStateError("task is already done")
        self._completed(user_id=user_id, done_at=done_at)

    def reopen(self, user_id: UUID) -> None:
        self._check_actor(user_id)
        if not self.done:
            raise TaskStateError("task is not done")
        self._reopened(user_id=user_id)

    def delete(self, user_id: UUID) -> None:
        self._check_actor(user_id)
        self._deleted(user_id=user_id)

    def restore(self, user_id: UUID) -> None:
        """Undo a delete: the same task (id, history) comes back as it was when deleted."""
        if user_id != self.user_id:
            raise TaskNotFoundError(str(self.id))
        if not self.deleted:
            raise TaskStateError("task is not deleted")
        self._restored(user_id=user_id)

    def _check_actor(self, user_id: UUID) -> None:
        if self.deleted or user_id != self.user_id:
            raise TaskNotFoundError(str(self.id))

    # Events carry the acting user's id so every public task event can be keyed by user.
    @event(Renamed)
    def _renamed(self, user_id: UUID, title: str) -> None:
        self.title = title

    @event(Completed)
    def _completed(self, user_id: UUID, done_at: datetime) -> None:
        self.done = True
        self.done_at = done_at

    @event(Reopened)
    def _reopened(self, user_id: UUID) -> None:
        self.done = False
        self.done_at = None

    @event(Deleted)
    def _deleted(self, user_id: UUID) -> None:
        self.deleted = True

    @event(Restored)
    def _restored(self, user_id: UUID) -> None:
        self.deleted = False


class DailyDigest(Aggregate):
    """One digest per (user, local date): the id is derived from both, so recording it twice
    collides (whatever fires twice, and whatever the user's timezone was each time)."""

    @staticmethod
    def create_id(user_id: UUID, digest_date: date) -> UUID:
        return digest_id_for(user_id, digest_date)

    class Requested(Aggregate.Created):
        user_id: UUID
        digest_date: date
        email: str
        total: int
        done: int
        undone_titles: list[str]
        timezone: str  # the user's, in which `digest_date` is a local date

    @event(Requested)
    def __init__(
        self,
        user_id: UUID,
        digest_date: date,
        email: str,
        total: int,
        done: int,
        undone_titles: list[str],
        timezone: str = DEFAULT_TIMEZONE,  # digests recorded before timezones were UTC's
    ) -> None:
        self.user_id = user_id
        self.digest_date = digest_date
        self.email = email
        self.total = total
        self.done = done
        self.undone_titles = list(undone_titles)
        self.timezone = timezone


def digest_id_for(user_id: UUID, digest_date: date) -> UUID:
    return uuid5(_DIGEST_NAMESPACE, f"{user_id}/{digest_date.isoformat()}")
