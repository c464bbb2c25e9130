"""The one Kafka consumer loop of the read side (poll -> decode -> handle -> commit), shared by the
projector and the mailer: each is a batch handler plus settings on it (consuming.loop)."""
