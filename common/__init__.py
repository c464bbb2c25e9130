"""Contracts shared by every process: settings, DB/Kafka wiring, the public events, auth."""
