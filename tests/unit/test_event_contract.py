from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.events import (
    EVENT_ID_NAMESPACE,
    TaskCreated,
    decode_event,
    deferred_event_id,
    encode_event,
    json_schema,
    public_event_id,
)
from tests.support.events import envelope_fields

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "events.schema.json"


def test_the_committed_json_schema_matches_the_contract_in_code() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(json_schema()))


def test_an_event_survives_a_roundtrip_through_json() -> None:
    event = TaskCreated(
        **envelope_fields(position=7),
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


@pytest.mark.parametrize("make_id", [public_event_id, deferred_event_id])
@given(aggregate=st.uuids(), version=st.integers(min_value=1, max_value=2**63 - 1))
def test_event_ids_are_the_rfc_4122_name_based_uuids_of_aggregate_and_version(
    make_id: Callable[[UUID, int], UUID], aggregate: UUID, version: int
) -> None:
    event_id = make_id(aggregate, version)
    expected = uuid5(EVENT_ID_NAMESPACE, f"{aggregate}/{version}")
    assert event_id == expected
    assert (str(event_id), event_id.version, event_id.variant) == (
        str(expected),
        5,
        expected.variant,
    )
    assert hash(event_id) == hash(expected)
    assert pickle.loads(pickle.dumps(event_id)) == expected


_ENVELOPE = envelope_fields(position=1)


def _created_with_id(event_id: UUID) -> TaskCreated:
    return TaskCreated(**{**_ENVELOPE, "event_id": event_id}, task_id=event_id, title="t")


@pytest.mark.parametrize(
    "first_use",
    [
        str,
        hash,
        repr,
        lambda i: i.bytes,
        lambda i: pickle.loads(pickle.dumps(i)),
        _created_with_id,
        lambda i: encode_event(_created_with_id(i)),
    ],
    ids=["str", "hash", "repr", "bytes", "pickle", "validated", "json"],
)
def test_a_deferred_event_id_is_the_same_id_whatever_first_reads_it(
    first_use: Callable[[UUID], object],
) -> None:
    aggregate = uuid4()
    deferred, eager = deferred_event_id(aggregate, 2), public_event_id(aggregate, 2)

    assert first_use(deferred) == first_use(eager)
    assert deferred == eager and str(deferred) == str(eager) and hash(deferred) == hash(eager)
