"""Everything the taskrelay processes share: domain, state machine, outbox, database, settings."""
