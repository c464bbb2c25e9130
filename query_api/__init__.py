"""The query API: reads the read model (common.read_model) only, never the event store."""
