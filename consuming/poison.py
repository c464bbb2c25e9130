"""The poison policy, defined once for every consumer of our events (relay, projector, mailer).

Every failure is classified as one of three kinds:

- POISON: the message itself is wrong — it cannot be decoded, it breaks the public contract
  (pydantic ValidationError), the database refuses it as data (psycopg DataError/IntegrityError), a
  handler refuses it (PoisonError, e.g. a permanent SMTP refusal or an invalid recipient). Retrying
  cannot help: it is dead-lettered and parked with its aggregate's later events (consuming.parking).
  An event type the code does not know (contracts.events.UnknownEventTypeError: a newer producer's)
  is poison only where it must be understood; the projector and the mailer skip it instead.
- TRANSIENT: a dependency is unavailable — PostgreSQL (OperationalError, InterfaceError, from
  psycopg or the event store library; deadlocks and serialization failures too), Kafka
  (retriable KafkaException), SMTP (TransientError). Retried with capped exponential backoff,
  forever, never dead-lettered.
- BUG: anything else. Retried CONSUMER_BUG_RETRIES times (it may be a race), then the worker
  halts: it stops taking messages, commits nothing more and reports not-ready on /ready with the
  reason. A bug is never dead-lettered: it would dead-letter the whole stream.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import eventsourcing.persistence as es
import psycopg
from confluent_kafka import KafkaException
from pydantic import ValidationError

from contracts.events import UnknownEventTypeError
from runtime.settings import ConsumerSettings

log = logging.getLogger(__name__)

MAX_REASON = 1000


class Kind(enum.Enum):
    POISON = "poison"
    TRANSIENT = "transient"
    BUG = "bug"


class PoisonError(Exception):
    """Raised by a handler for a message it refuses for good (the message's fault)."""


class TransientError(Exception):
    """Raised by an adapter when a dependency is unavailable (worth retrying as is)."""


class HaltedError(Exception):
    """The worker halted on a bug (see BugBudget); carries the reason shown on /ready."""


def classify(exc: BaseException) -> Kind:
    """The policy: which kind of failure `exc` is. A wrapper (e.g. the event store library's own
    exceptions around psycopg's) is classified by what it wraps when it says nothing itself."""
    kind = _classify_one(exc)
    cause = exc.__cause__
    if kind is Kind.BUG and cause is not None and cause is not exc:
        return classify(cause)
    return kind


def _classify_one(exc: BaseException) -> Kind:
    if isinstance(exc, es.OperationalError | es.InterfaceError):
        return Kind.TRANSIENT  # the event store's pool/connection could not reach PostgreSQL
    if isinstance(exc, es.DataError | es.IntegrityError):
        return Kind.POISON
    if isinstance(exc, PoisonError | ValidationError | UnicodeDecodeError | json.JSONDecodeError):
        return Kind.POISON
    if isinstance(exc, UnknownEventTypeError):
        return Kind.POISON  # to whoever must understand it; consumers that need not skip it
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return Kind.POISON
    if isinstance(exc, TransientError | psycopg.OperationalError | psycopg.InterfaceError):
        return Kind.TRANSIENT
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return Kind.TRANSIENT  # the schema is not migrated yet (a deploy in progress): wait for it
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        retriable = getattr(error, "retriable", None)
        fatal = getattr(error, "fatal", None)
        if callable(fatal) and fatal():
            return Kind.BUG
        return Kind.TRANSIENT if callable(retriable) and retriable() else Kind.BUG
    if isinstance(exc, ConnectionError | TimeoutError):
        return Kind.TRANSIENT
    return Kind.BUG


def describe(exc: BaseException) -> str:
    """A one-line reason for headers, the dead_letters table and /ready (bounded length)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "message"
            text = f"ValidationError: {where}: {first.get('msg', '')}"
            return f"{text} ({exc.error_count()} error(s))"[:MAX_REASON]
    return f"{type(exc).__name__}: {exc}"[:MAX_REASON]


@dataclass
class Backoff:
    """Capped exponential backoff; reset() after a success."""

    initial: float = 0.1
    maximum: float = 5.0
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial

    @classmethod
    def from_settings(cls, settings: ConsumerSettings) -> Backoff:
        return cls(settings.CONSUMER_RETRY_INITIAL_SECONDS, settings.CONSUMER_RETRY_MAX_SECONDS)


@dataclass
class BugBudget:
    """Counts consecutive bug failures; the one past `retries` halts the worker."""

    retries: int = 5
    on_halt: Callable[[str], None] = lambda _reason: None
    failures: int = 0

    def failed(self, exc: BaseException, what: str) -> None:
        """Record a bug; raise HaltedError once the budget is spent (after calling on_halt)."""
        self.failures += 1
        reason = f"{what} failed {self.failures} time(s) on a bug: {describe(exc)}"
        if self.failures > self.retries:
            log.error("halting: a bug outlasted its retries", extra={"reason": reason})
            self.on_halt(reason)
            raise HaltedError(reason) from exc
        log.exception("unexpected error (a bug?), retrying", extra={"reason": reason})

    def succeeded(self) -> None:
        self.failures = 0
