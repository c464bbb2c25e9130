from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from event_store.domain.model import (
    DailyDigest,
    EmailClaim,
    InvalidTitleError,
    Task,
    TaskNotFoundError,
    TaskStateError,
    User,
    claim_id_for,
    digest_id_for,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def new_task(title: str = "write tests") -> tuple[Task, UUID]:
    owner = uuid4()
    return Task.create(user_id=owner, title=title), owner


def event_names(task: Task) -> list[str]:
    return [type(e).__name__ for e in task.collect_events()]


def test_a_new_task_is_open_with_a_trimmed_title() -> None:
    task, owner = new_task("  buy milk  ")
    assert (task.title, task.done, task.done_at, task.user_id) == ("buy milk", False, None, owner)
    assert event_names(task) == ["Created"]


@pytest.mark.parametrize("title", ["", "   ", "x" * 501])
def test_titles_must_have_1_to_500_characters_after_trimming(title: str) -> None:
    with pytest.raises(InvalidTitleError):
        Task.create(user_id=uuid4(), title=title)


def test_a_500_character_title_is_accepted() -> None:
    task, _ = new_task("x" * 500)
    assert len(task.title) == 500


def test_completing_sets_done_at_and_reopening_clears_it() -> None:
    task, owner = new_task()
    task.complete(user_id=owner, done_at=NOW)
    assert (task.done, task.done_at) == (True, NOW)
    task.reopen(user_id=owner)
    assert (task.done, task.done_at) == (False, None)
    assert event_names(task) == ["Created", "Completed", "Reopened"]
    assert task.version == 3


def test_renaming_records_the_normalised_title() -> None:
    task, owner = new_task()
    task.rename(user_id=owner, title="  new name ")
    renamed = task.collect_events()[-1]
    assert task.title == "new name"
    assert renamed.title == "new name"  # type: ignore[attr-defined]


def test_completing_twice_or_reopening_an_open_task_is_refused() -> None:
    task, owner = new_task()
    with pytest.raises(TaskStateError):
        task.reopen(user_id=owner)
    task.complete(user_id=owner, done_at=NOW)
    with pytest.raises(TaskStateError):
        task.complete(user_id=owner, done_at=NOW)


def test_a_deleted_task_refuses_every_further_command() -> None:
    task, owner = new_task()
    task.delete(user_id=owner)
    with pytest.raises(TaskNotFoundError):
        task.rename(user_id=owner, title="again")
    with pytest.raises(TaskNotFoundError):
        task.complete(user_id=owner, done_at=NOW)
    with pytest.raises(TaskNotFoundError):
        task.delete(user_id=owner)


def test_restoring_a_deleted_task_brings_back_the_same_task_as_it_was() -> None:
    task, owner = new_task()
    task.complete(user_id=owner, done_at=NOW)
    task.delete(user_id=owner)
    task.restore(user_id=owner)
    assert event_names(task) == ["Created", "Completed", "Deleted", "Restored"]
    assert (task.deleted, task.title, task.done, task.done_at, task.version) == (
        False,
        "write tests",
        True,
        NOW,
        4,
    )
    task.rename(user_id=owner, title="usable again")  # no longer refused
    assert task.title == "usable again"


def test_restoring_a_task_that_is_not_deleted_is_refused() -> None:
    task, owner = new_task()
    with pytest.raises(TaskStateError):
        task.restore(user_id=owner)
    assert task.version == 1


def test_another_user_cannot_restore_the_task_and_sees_it_as_not_found() -> None:
    task, owner = new_task()
    task.delete(user_id=owner)
    with pytest.raises(TaskNotFoundError):
        task.restore(user_id=uuid4())
    assert task.deleted


def test_another_user_cannot_touch_the_task_and_sees_it_as_not_found() -> None:
    task, _ = new_task()
    with pytest.raises(TaskNotFoundError):
        task.rename(user_id=uuid4(), title="mine now")
    assert task.version == 1


def test_replaying_the_events_rebuilds_the_same_task() -> None:
    task, owner = new_task()
    task.rename(user_id=owner, title="renamed")
    task.complete(user_id=owner, done_at=NOW)
    events = task.collect_events()
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert isinstance(replayed, Task)
    assert (replayed.title, replayed.done, replayed.done_at, replayed.version) == (
        "renamed",
        True,
        NOW,
        3,
    )


def test_users_are_registered_with_a_normalised_email() -> None:
    user = User.register(email="  Ada@Example.COM ", password_hash="h")
    assert user.email == "ada@example.com"


def test_email_claims_are_keyed_by_the_normalised_email() -> None:
    claim = EmailClaim(email="ada@example.com", user_id=uuid4())
    assert claim.id == claim_id_for("ADA@example.com ")


def test_a_daily_digest_has_one_identity_per_user_and_date() -> None:
    user_id = uuid4()
    day = NOW.date()
    digest = DailyDigest(
        user_id=user_id, digest_date=day, email="a@example.com", total=3, done=1, undone_titles=[]
    )
    assert digest.id == digest_id_for(user_id, day)
    assert digest_id_for(user_id, day) != digest_id_for(uuid4(), day)
