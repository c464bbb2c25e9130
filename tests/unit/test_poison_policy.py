"""The one poison policy (consuming.poison) and the one dead-letter envelope
(contracts.dead_letters)."""

from __future__ import annotations

import json
from uuid import uuid4

import eventsourcing.persistence as es
import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from consuming.poison import Backoff, BugBudget, HaltedError, Kind, PoisonError, classify
from contracts.dead_letters import DeadLetter, LetterKind, sequence_id, sniff
from contracts.events import decode_event
from projector.handlers import ProjectionError
from tests.support.events import History


def validation_error() -> ValidationError:
    try:
        decode_event(b'{"type": "task.created", "title": 3}')
    except ValidationError as e:
        return e
    raise AssertionError("expected a ValidationError")


def wrapped(outer: Exception, cause: Exception) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (validation_error(), Kind.POISON),
        (json.JSONDecodeError("bad", "x", 0), Kind.POISON),
        (psycopg.DataError("invalid byte sequence"), Kind.POISON),
        (psycopg.errors.UntranslatableCharacter(), Kind.POISON),
        (psycopg.IntegrityError("duplicate key"), Kind.POISON),
        (ProjectionError("contradicts the read model"), Kind.POISON),
        (PoisonError("550 mailbox unavailable"), Kind.POISON),
        (psycopg.OperationalError("connection refused"), Kind.TRANSIENT),
        (psycopg.errors.DeadlockDetected(), Kind.TRANSIENT),
        (psycopg.InterfaceError("connection closed"), Kind.TRANSIENT),
        (psycopg.errors.UndefinedTable(), Kind.TRANSIENT),
        (ConnectionError("reset"), Kind.TRANSIENT),
        (es.OperationalError("the store's connection was lost"), Kind.TRANSIENT),
        (es.ConnectionUnavailableError("pool exhausted"), Kind.TRANSIENT),
        (es.InterfaceError("connection closed"), Kind.TRANSIENT),
        (es.DataError("invalid"), Kind.POISON),
        (wrapped(RuntimeError("a wrapper"), psycopg.OperationalError("down")), Kind.TRANSIENT),
        (wrapped(RuntimeError("a wrapper"), KeyError("bug")), Kind.BUG),
        (KafkaException(KafkaError(KafkaError._TRANSPORT, retriable=True)), Kind.TRANSIENT),
        (KafkaException(KafkaError(KafkaError._FATAL, fatal=True)), Kind.BUG),
        (KafkaException(KafkaError(KafkaError._INVALID_ARG)), Kind.BUG),
        (KeyError("a bug"), Kind.BUG),
        (psycopg.ProgrammingError("syntax error"), Kind.BUG),
        (AssertionError(), Kind.BUG),
    ],
)
def test_every_failure_is_classified_as_poison_transient_or_bug(
    exc: BaseException, kind: Kind
) -> None:
    assert classify(exc) is kind


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_a_bug_budget_halts_on_the_failure_after_its_retries_and_a_success_refills_it() -> None:
    halted: list[str] = []
    budget = BugBudget(2, halted.append)
    for _ in range(2):
        budget.failed(KeyError("x"), "apply")
    budget.succeeded()
    for _ in range(2):
        budget.failed(KeyError("x"), "apply")
    with pytest.raises(HaltedError, match="apply failed 3 time"):
        budget.failed(KeyError("x"), "apply")
    assert len(halted) == 1 and "KeyError" in halted[0]


def test_the_sequence_of_an_event_is_its_aggregate() -> None:
    h, user, task = History(), uuid4(), uuid4()
    assert sequence_id(h.register(user)) == str(user)
    assert sequence_id(h.create(user, task)) == str(task)
    assert sequence_id(h.complete(user, task)) == str(task)
    digest = h.digest(user)
    assert sequence_id(digest) == str(digest.digest_id)


def test_the_aggregate_of_an_undecodable_message_is_sniffed_when_its_json_names_it() -> None:
    task = str(uuid4())
    assert sniff(json.dumps({"type": "task.renamed", "task_id": task, "x": 1}).encode()) == (
        task,
        "task.renamed",
    )
    assert sniff(b"not json", [("type", b"task.created")]) == (None, "task.created")
    assert sniff(b"[1, 2]") == (None, None)


def test_a_dead_letter_keeps_the_original_headers_and_adds_the_one_dlq_envelope() -> None:
    letter = DeadLetter(
        consumer="projector",
        service="projector",
        topic="events",
        partition=2,
        offset=41,
        key=b"k",
        value=b"v",
        reason="undecodable: x" * 200,
        kind=LetterKind.PARKED,
        aggregate_id="agg",
        event_type="task.created",
        headers=(("type", b"task.created"), ("dlq.reason", b"an older dead letter's")),
    )
    headers = dict(letter.kafka_headers())
    assert headers["type"] == b"task.created"
    assert headers["dlq.reason"] == letter.reason.encode() and len(letter.reason) == 1000
    assert {k: headers[k] for k in ("dlq.kind", "dlq.consumer", "dlq.topic")} == {
        "dlq.kind": b"parked",
        "dlq.consumer": b"projector",
        "dlq.topic": b"events",
    }
    assert (headers["dlq.partition"], headers["dlq.offset"]) == (b"2", b"41")
    assert (headers["dlq.aggregate_id"], headers["dlq.event_type"]) == (b"agg", b"task.created")
    assert {"dlq.service", "dlq.failed_at"} <= set(headers)
