"""Daily digest mailer: consumes `email.daily_digest.requested` from Kafka and sends one email per
event over SMTP, idempotently (processed_events), dead-lettering permanent refusals."""
