"""The projector's handlers: each event changes the read model once, and only once."""

from __future__ import annotations

import copy
from typing import get_args
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import PublicEvent, TaskRestored, UserPreferencesChanged
from projector.handlers import HANDLERS, Outcome, ProjectionError, apply_event
from projector.rows import Rows
from tests.support.events import History
from tests.support.read_side import fold


def applied(*events: PublicEvent) -> Rows:
    rows = Rows()
    for e in events:
        apply_event(rows, e)
    return rows


def test_every_public_event_type_has_a_handler() -> None:
    # Every member of the PublicEvent union (Annotated[A | B | ..., discriminator]).
    (union, *_) = get_args(PublicEvent)
    event_types = set(get_args(union))
    assert {UserPreferencesChanged, TaskRestored} <= event_types
    assert set(HANDLERS) == event_types


def test_a_task_created_then_completed_is_done_at_version_two_with_its_position() -> None:
    h, user, task = History(), uuid4(), uuid4()
    registered = h.register(user)
    created = h.create(user, task, "buy milk")
    completed = h.complete(user, task)
    row = applied(registered, created, completed).tasks[task]
    assert (row.title, row.done, row.done_at, row.version) == (
        "buy milk",
        True,
        completed.done_at,
        2,
    )
    assert (row.created_at, row.position, row.deleted) == (created.occurred_at, 3, False)


def test_reopening_clears_done_and_done_at_and_renaming_changes_the_title() -> None:
    h, user, task = History(), uuid4(), uuid4()
    rows = applied(
        h.create(user, task),
        h.complete(user, task),
        h.reopen(user, task),
        h.rename(user, task, "x"),
    )
    row = rows.tasks[task]
    assert (row.done, row.done_at, row.title, row.version) == (False, None, "x", 4)


def test_a_user_registration_creates_the_user_row_with_the_event_time() -> None:
    h, user = History(), uuid4()
    event = h.register(user, "grace@example.com")
    row = applied(event).users[user]
    assert (row.email, row.created_at, row.version, row.position) == (
        "grace@example.com",
        event.occurred_at,
        1,
        1,
    )


def test_a_new_user_row_has_utc_and_the_digest_on_until_the_preferences_change() -> None:
    h, user = History(), uuid4()
    registered = h.register(user)
    rows = applied(registered)
    assert (rows.users[user].timezone, rows.users[user].digest_enabled) == ("UTC", True)
    changed = h.preferences(user, "Asia/Kathmandu", digest_enabled=False)
    assert apply_event(rows, changed) is Outcome.APPLIED
    row = rows.users[user]
    assert (row.timezone, row.digest_enabled, row.version, row.position) == (
        "Asia/Kathmandu",
        False,
        2,
        changed.position,
    )
    assert apply_event(rows, changed) is Outcome.DUPLICATE


def test_preferences_of_a_user_not_yet_registered_are_a_gap() -> None:
    h, user = History(), uuid4()
    h.register(user)  # lost
    rows = applied(h.preferences(user))
    assert rows.users == {} and rows.gaps == 1


def test_applying_the_same_event_twice_changes_nothing_the_second_time() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created, renamed = h.create(user, task), h.rename(user, task, "new title")
    rows = applied(created, renamed)
    before = copy.deepcopy(rows.tasks)
    assert apply_event(rows, renamed) is Outcome.DUPLICATE
    assert apply_event(rows, created) is Outcome.DUPLICATE
    assert rows.tasks == before


def test_an_older_event_after_a_newer_one_is_skipped() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created = h.create(user, task, "v1")
    first = h.rename(user, task, "v2")
    second = h.rename(user, task, "v3")
    rows = applied(created, first, second)
    assert apply_event(rows, first) is Outcome.DUPLICATE
    assert rows.tasks[task].title == "v3"


def test_a_deleted_task_stays_deleted_when_older_events_are_redelivered() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created, completed, deleted = h.create(user, task), h.complete(user, task), h.delete(user, task)
    rows = applied(created, completed, deleted)
    for event in (created, completed):
        apply_event(rows, event)
    assert rows.tasks[task].deleted is True
    assert rows.tasks[task].version == 3


def test_an_event_whose_predecessor_is_missing_is_skipped_as_a_gap() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created = h.create(user, task, "v1")
    h.rename(user, task, "lost on the way")
    later = h.rename(user, task, "v3")
    rows = applied(created)
    assert apply_event(rows, later) is Outcome.GAP
    assert (rows.tasks[task].title, rows.tasks[task].version, rows.gaps) == ("v1", 1, 1)


def test_a_change_to_a_task_never_created_is_a_gap_and_creates_no_row() -> None:
    h, user, task = History(), uuid4(), uuid4()
    h.create(user, task)
    rows = Rows()
    assert apply_event(rows, h.complete(user, task)) is Outcome.GAP
    assert rows.tasks == {}


def test_a_task_event_from_another_user_cannot_be_applied() -> None:
    h, owner, task = History(), uuid4(), uuid4()
    rows = applied(h.create(owner, task))
    with pytest.raises(ProjectionError):
        apply_event(rows, h.rename(uuid4(), task, "hijacked"))


def test_the_user_position_is_the_greatest_position_seen_even_for_skipped_events() -> None:
    h, user, task = History(), uuid4(), uuid4()
    created, renamed, digest = h.create(user, task), h.rename(user, task, "x"), h.digest(user)
    rows = applied(created, renamed, digest)
    assert rows.positions[user] == digest.position
    apply_event(rows, created)
    assert rows.positions[user] == digest.position


def test_text_the_read_model_cannot_store_is_refused_before_touching_any_row() -> None:
    h, user, task = History(), uuid4(), uuid4()
    rows = applied(h.create(user, task, "fine"))
    with pytest.raises(ProjectionError, match="NUL"):
        apply_event(rows, h.rename(user, task, "nul\x00inside"))
    with pytest.raises(ProjectionError):
        apply_event(rows, h.create(user, uuid4(), "\x00"))
    assert (rows.tasks[task].title, rows.tasks[task].version, len(rows.tasks)) == ("fine", 1, 1)


def test_a_digest_request_moves_only_the_users_position() -> None:
    h, user = History(), uuid4()
    digest = h.digest(user)
    rows = applied(digest)
    assert (rows.users, rows.tasks, rows.positions) == ({}, {}, {user: digest.position})


TITLES = st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=5)


@st.composite
def histories(draw: st.DrawFn) -> list[PublicEvent]:
    h = History()
    users = [uuid4() for _ in range(draw(st.integers(1, 3)))]
    events: list[PublicEvent] = [h.register(u) for u in users]
    tasks: list[tuple[UUID, UUID, bool, bool]] = []  # (user, task, done, deleted)
    for _ in range(draw(st.integers(0, 25))):
        ops = ["create", "rename", "toggle", "delete", "restore", "digest", "prefs"]
        op = draw(st.sampled_from(ops))
        if op == "prefs":
            zone = draw(st.sampled_from(["UTC", "Asia/Kathmandu", "America/Los_Angeles"]))
            events.append(h.preferences(draw(st.sampled_from(users)), zone, draw(st.booleans())))
            continue
        if op == "create" or not tasks:
            user = draw(st.sampled_from(users))
            task = uuid4()
            events.append(h.create(user, task, draw(TITLES)))
            tasks.append((user, task, False, False))
            continue
        i = draw(st.integers(0, len(tasks) - 1))
        user, task, done, deleted = tasks[i]
        if deleted:
            if op == "restore":
                events.append(h.restore(user, task))
                tasks[i] = (user, task, done, False)
            continue
        if op == "rename":
            events.append(h.rename(user, task, draw(TITLES)))
        elif op == "toggle":
            events.append(h.reopen(user, task) if done else h.complete(user, task))
            tasks[i] = (user, task, not done, deleted)
        elif op == "delete":
            events.append(h.delete(user, task))
            tasks[i] = (user, task, done, True)
        else:
            events.append(h.digest(user))
    return events


@settings(max_examples=60, deadline=None)
@given(events=histories(), data=st.data())
def test_redelivering_any_earlier_events_in_any_order_never_changes_the_result(
    events: list[PublicEvent], data: st.DataObject
) -> None:
    expected = fold(events)
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=15))
    assert fold([*events, *redelivered]) == expected


@settings(max_examples=40, deadline=None)
@given(events=histories(), cut=st.integers(0, 40))
def test_a_crash_that_replays_the_tail_of_the_stream_ends_in_the_same_tables(
    events: list[PublicEvent], cut: int
) -> None:
    # At-least-once delivery: after a crash the uncommitted tail is delivered again.
    cut = min(cut, len(events))
    assert fold([*events, *events[cut:]]) == fold(events)
