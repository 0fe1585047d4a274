"""The pure core: contract, rules, transform, payload, JSON, retry policy, outcome decisions.

Import rule (import-linter, pyproject.toml): nothing here imports redis, httpx, celery, kombu,
structlog, pydantic_settings, `worker.settings` or any other `worker` package. Every function is a
plain computation over values, testable without a service.
"""
