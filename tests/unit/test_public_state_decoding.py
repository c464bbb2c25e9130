"""The public reader's state decoder (orjson, then the transcoded values revived) reads every
stored state as eventsourcing's own transcoder does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import JSONTranscoder

from event_store.application import TodoStore
from event_store.public_reader import state_decoder


@pytest.fixture
def transcoder() -> Iterator[JSONTranscoder]:
    store = TodoStore(env={})  # eventsourcing's in-memory recorder, the store's transcoder
    assert isinstance(store.mapper.transcoder, JSONTranscoder)
    yield store.mapper.transcoder
    store.close()


user = uuid4()
STATES: list[dict[str, Any]] = [
    {"timestamp": datetime(2026, 12, 3, 14, 0, 1, 5, tzinfo=UTC), "user_id": user, "title": "t"},
    {"digest_date": date(2026, 12, 3), "undone_titles": ["a", "b"], "total": 3, "done": 1},
    {
        "nested": {"ids": [user, uuid4()], "at": [{"when": datetime(2026, 1, 1, tzinfo=UTC)}]},
        "amount": Decimal("1.50"),
        "three_keys": {"_type_": "uuid_hex", "_data_": user.hex, "other": 1},
        "empty": {},
        "none": None,
        "flag": True,
    },
    # What orjson refuses (Infinity) or reads otherwise (an integer beyond 64 bits, as a float):
    # decoded by the transcoder itself.
    {"limit": float("inf"), "user_id": user},
    {"big": 2**70, "ids": [user]},
]


@pytest.mark.parametrize("attributes", STATES)
def test_a_state_decodes_to_what_the_transcoder_decodes(
    transcoder: JSONTranscoder, attributes: dict[str, Any]
) -> None:
    state = transcoder.encode(attributes)

    decoded = state_decoder(transcoder)(state)

    assert decoded == transcoder.decode(state) == attributes
    assert {k: type(v) for k, v in decoded.items()} == {k: type(v) for k, v in attributes.items()}


def test_a_user_id_seen_again_is_the_same_value(transcoder: JSONTranscoder) -> None:
    decode = state_decoder(transcoder)
    first, second = (decode(transcoder.encode({"user_id": user})) for _ in range(2))
    assert first["user_id"] == second["user_id"] == user
