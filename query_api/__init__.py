"""The query API: reads the read model (contracts.read_model) only, never the event store."""
