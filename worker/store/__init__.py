"""Redis adapters: the ledger, dead letters, limiter, breaker, leases, audit and stats.

Import rule (import-linter, pyproject.toml): `worker.core` and redis only. Constructors take a
client, the key builder and plain values; `worker.wiring` maps settings onto them.
"""
