"""The write model: aggregates in PostgreSQL via `eventsourcing`, and the relay to Kafka."""
