"""Daily digest scheduler: at 00:00 (configured timezone) records one `DailyDigest` per user with
tasks in the event store. It reads the `users`/`tasks` read tables and never sends email."""
