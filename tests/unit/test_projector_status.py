"""`python -m projector status`: the projector position is what every partition has applied."""

from __future__ import annotations

from projector.status import PartitionStatus, Status, format_status, projector_position


def partition(n: int, applied: int | None, position: int, end: int) -> PartitionStatus:
    return PartitionStatus(n, applied, position, end)


def test_when_every_partition_is_caught_up_the_projector_is_at_the_relay_position() -> None:
    parts = [partition(0, 9, 40, 10), partition(1, 4, 37, 5), partition(2, None, 0, 0)]
    assert projector_position(42, parts) == 42


def test_a_partition_still_behind_holds_the_projector_position_at_what_it_applied() -> None:
    parts = [partition(0, 9, 40, 10), partition(1, 2, 30, 5), partition(2, None, 0, 3)]
    assert projector_position(42, parts) == 0
    parts[2] = partition(2, 2, 35, 3)
    assert projector_position(42, parts) == 30


def test_messages_behind_count_what_is_on_kafka_but_not_yet_applied() -> None:
    assert partition(0, 9, 40, 15).behind == 5
    assert partition(0, None, 0, 3).behind == 3
    assert partition(0, 4, 10, 5).behind == 0


def test_the_status_report_shows_head_relay_projector_and_lag() -> None:
    status = Status(
        store_head=50,
        relay_position=45,
        projector_position=40,
        projector_position_exact=True,
        partitions=[partition(0, 9, 40, 12)],
    )
    text = format_status(status)
    assert "store head position:  50" in text
    assert "relay position:       45" in text
    assert "projector position:   40" in text
    assert "projector lag:        10 positions, 2 messages" in text
