"""Runtime plumbing every process shares: typed settings, structured logs, metrics, health,
tracing, signals and the Kafka client wiring."""
