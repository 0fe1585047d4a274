"""`jetti-relay dlq`: the dead-letter CLI (list, show, stats, replay, export, purge, audit)."""
