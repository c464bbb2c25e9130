from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from common.events import TaskCreated, decode_event, encode_event, json_schema, public_event_id

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "events.schema.json"


def test_the_committed_json_schema_matches_the_contract_in_code() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(json_schema()))


def test_an_event_survives_a_roundtrip_through_json() -> None:
    event = TaskCreated(
        event_id=uuid4(),
        occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
        user_id=uuid4(),
        position=7,
        aggregate_version=1,
        task_id=uuid4(),
        title="hello",
    )
    assert decode_event(encode_event(event)) == event
    assert json.loads(encode_event(event))["type"] == "task.created"


@pytest.mark.parametrize(
    "raw", [b"not json", b"{}", b'{"type": 5}', b'{"type": "task.created", "title": 3}']
)
def test_off_contract_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_event(raw)


def test_event_ids_are_stable_per_aggregate_version() -> None:
    aggregate = uuid4()
    assert public_event_id(aggregate, 3) == public_event_id(aggregate, 3)
    assert public_event_id(aggregate, 3) != public_event_id(aggregate, 4)
