"""The public contracts: what crosses a process boundary (events on Kafka, the dead-letter
envelope, the read-model schema, HTTP task bodies, unsubscribe tokens). No I/O lives here."""
