"""The projector: builds the read model (contracts.read_model) from the public events.

- `python -m projector consume`: live, from Kafka topic `events` (consumer group `projector`).
- `python -m projector rebuild`: from the event store, into fresh tables swapped in atomically.
- `python -m projector status`: store head, relay, projector positions and lag.
"""
