"""How every consumer of our events works: the one Kafka loop (poll -> decode -> handle -> commit,
consuming.loop) shared by the projector and the mailer, each a batch handler plus settings on it;
the poison policy, sequenced dead letters (parking) and the operators' dead-letter CLI."""
