"""The mailer's decisions for a polled batch, through the shared consumer loop as the composition
root builds it, with fakes for Kafka, SMTP, processed_events and the DLQ: what is sent, skipped,
dead-lettered, committed and rewound."""

from __future__ import annotations

from uuid import uuid4

import pytest

from consuming.poison import HaltedError
from contracts.dead_letters import LetterKind
from contracts.events import encode_event
from mailer.envelope import Email
from mailer.smtp import Permanent, SendOutcome, Transient
from tests.support.mailer_fakes import (
    TOPIC,
    FakeParking,
    FakeProcessed,
    FakeSender,
    Log,
    digest,
    mailer,
    process,
    task_created,
)


def test_new_digests_are_sent_recorded_and_their_offsets_committed() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    instance, sender, processed, _ = mailer()

    result = process(instance, [log.message(ada, 0), log.message(bob, 1), log.message(ada, 1)])

    assert sender.sent_to == ["ada@example.com", "bob@example.com"]
    assert processed.ids == {ada.event_id, bob.event_id}
    assert result.commit == {(TOPIC, 0): 1, (TOPIC, 1): 2}
    assert (result.sent, result.duplicates, result.rewind) == (2, 1, {})
    assert processed.queries == 1, "one processed_events query per batch"


def test_a_digest_already_processed_is_skipped_without_sending_and_still_committed() -> None:
    log = Log()
    ada = digest("ada@example.com")
    instance, sender, _, _ = mailer(processed=FakeProcessed(already=[ada.event_id]))

    result = process(instance, [log.message(ada)])

    assert sender.attempts == []
    assert (result.duplicates, result.commit) == (1, {(TOPIC, 0): 1})


def test_other_event_types_are_ignored_but_committed_with_or_without_a_type_header() -> None:
    log = Log()
    instance, sender, processed, _ = mailer()

    result = process(
        instance, [log.message(task_created()), log.message(task_created(), header=False)]
    )

    assert sender.attempts == [] and processed.ids == set()
    assert (result.ignored, result.commit) == (2, {(TOPIC, 0): 2})


def test_an_undecodable_digest_message_is_dead_lettered_and_parked_not_skipped() -> None:
    log = Log()
    digest_id = str(uuid4())
    raw = f'{{"type": "email.daily_digest.requested", "digest_id": "{digest_id}"}}'.encode()
    bad = log.message(None, raw=raw)
    parked = FakeParking()
    instance, _, _, letters = mailer(parked=parked)

    result = process(instance, [bad])

    assert [(d.offset, d.kind, d.aggregate_id) for d in letters.letters] == [
        (0, LetterKind.POISON, digest_id)
    ]
    assert letters.letters[0].reason.startswith("undecodable: ValidationError")
    assert list(parked.rows) == [(TOPIC, 0, 0)]
    assert (result.dead_lettered, result.commit) == (1, {(TOPIC, 0): 1})


def test_a_permanent_refusal_is_parked_with_its_reason_not_recorded_and_committed() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    refusal = Permanent("recipient refused: 550 mailbox unavailable", 550)
    parked = FakeParking()
    instance, sender, processed, letters = mailer(
        FakeSender({"bob@example.com": refusal}), parked=parked
    )

    result = process(instance, [log.message(bob), log.message(ada)])

    assert [(d.value, d.aggregate_id, d.service) for d in letters.letters] == [
        (encode_event(bob), str(bob.digest_id), "mailer")
    ]
    assert "SMTP 550" in letters.letters[0].reason and refusal.reason in letters.letters[0].reason
    assert sender.sent_to == ["ada@example.com"], "the mailer carries on"
    assert processed.ids == {ada.event_id}, "parked, so that a replay can still send it"
    assert list(parked.rows) == [(TOPIC, 0, 0)]
    assert (result.dead_lettered, result.sent, result.commit) == (1, 1, {(TOPIC, 0): 2})


def test_a_redelivered_parked_digest_is_not_sent_again_and_later_messages_wait_behind_it() -> None:
    log = Log()
    bob = digest("bob@example.com")
    refusal = Permanent("recipient refused: 550 mailbox unavailable", 550)
    parked = FakeParking()
    instance, sender, _, letters = mailer(FakeSender({"bob@example.com": refusal}), parked=parked)
    first = log.message(bob)
    process(instance, [first])

    result = process(instance, [first, log.message(bob)])  # redelivery, then a duplicate copy

    assert sender.attempts == ["bob@example.com"], "tried once"
    assert [d.kind for d in letters.letters] == [LetterKind.POISON] * 2 + [LetterKind.PARKED]
    assert sorted(parked.rows) == [(TOPIC, 0, 0), (TOPIC, 0, 1)]
    assert result.commit == {(TOPIC, 0): 2}


def test_an_invalid_recipient_address_is_parked_without_talking_to_smtp() -> None:
    log = Log()
    broken = digest("ada@example.com").model_copy(update={"email": "no address at all"})
    instance, sender, _, letters = mailer()

    result = process(instance, [log.message(broken)])

    assert sender.attempts == []
    assert "invalid recipient address" in letters.letters[0].reason
    assert result.dead_lettered == 1


class BuggySender(FakeSender):
    async def send(self, email: Email) -> SendOutcome:
        raise KeyError("a bug in the sender")


def test_a_bug_is_retried_a_bounded_number_of_times_then_the_mailer_halts_not_ready() -> None:
    log = Log()
    instance, _, processed, letters = mailer(BuggySender())
    message = log.message(digest("ada@example.com"))

    for _ in range(2):  # bug_retries=2: rewound and retried, nothing committed
        result = process(instance, [message])
        assert (result.commit, result.rewind) == ({}, {(TOPIC, 0): 0})
    with pytest.raises(HaltedError):
        process(instance, [message])

    readiness = instance.heartbeat.readiness()
    assert not readiness.ready
    assert readiness.reason is not None and "KeyError" in readiness.reason
    assert letters.letters == [] and processed.ids == set(), "a bug is never dead-lettered"


def test_a_lasting_transient_failure_commits_what_is_done_and_rewinds_the_rest() -> None:
    log = Log()
    ada, bob, carol, dan = (digest(f"{n}@example.com") for n in ("ada", "bob", "carol", "dan"))
    down = Transient("connection refused")
    instance, sender, processed, _ = mailer(FakeSender({"bob@example.com": down}))
    batch = [log.message(ada, 0), log.message(bob, 0), log.message(carol, 1), log.message(dan, 2)]

    result = process(instance, batch)

    assert sender.sent_to == ["ada@example.com"]
    assert processed.ids == {ada.event_id}, "nothing unsent is recorded"
    assert result.commit == {(TOPIC, 0): 1}
    assert result.rewind == {(TOPIC, 0): 1, (TOPIC, 1): 0, (TOPIC, 2): 0}


def test_when_processed_events_cannot_be_checked_nothing_is_sent_and_the_batch_is_rewound() -> None:
    log = Log()
    instance, sender, _, _ = mailer(processed=FakeProcessed(broken=True))

    result = process(instance, [log.message(digest("ada@example.com"), 2)])

    assert sender.attempts == []
    assert (result.commit, result.rewind) == ({}, {(TOPIC, 2): 0})
