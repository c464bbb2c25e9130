"""The user's preferences in the domain and the timezone rule at the edge."""

from __future__ import annotations

import pytest

from contracts.events import UserPreferencesChanged, decode_event
from contracts.timezones import is_iana_timezone
from event_store.domain.model import User
from event_store.public import public_event_of


def test_a_user_registered_with_utc_has_the_digest_on_and_no_preferences_event() -> None:
    user = User.register("ada@example.com", "hash")
    assert (user.timezone, user.digest_enabled) == ("UTC", True)
    assert [type(e) for e in user.collect_events()] == [User.Registered]


def test_a_user_registered_with_another_timezone_records_it_as_a_second_event() -> None:
    user = User.register("ada@example.com", "hash", timezone="Asia/Kolkata")
    events = user.collect_events()
    assert [type(e) for e in events] == [User.Registered, User.PreferencesChanged]
    public = public_event_of(events[1], position=7)
    assert isinstance(public, UserPreferencesChanged)
    assert (public.timezone, public.digest_enabled) == ("Asia/Kolkata", True)
    assert public.user_id == user.id
    assert decode_event(public.model_dump_json()) == public


def test_changing_nothing_records_nothing_and_each_change_carries_both_preferences() -> None:
    user = User.register("ada@example.com", "hash")
    user.collect_events()
    assert user.change_preferences(timezone="UTC", digest_enabled=True) is False
    assert user.collect_events() == []
    assert user.change_preferences(digest_enabled=False) is True
    (event,) = user.collect_events()
    assert isinstance(event, User.PreferencesChanged)
    assert (event.timezone, event.digest_enabled) == ("UTC", False)


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "Asia/Kathmandu", "America/St_Johns"])
def test_iana_names_are_timezones(name: str) -> None:
    assert is_iana_timezone(name)


@pytest.mark.parametrize("name", ["localtime", "Factory", "utc", "", "Europe/", "../etc/passwd"])
def test_host_specific_placeholder_or_made_up_names_are_not(name: str) -> None:
    assert not is_iana_timezone(name)
