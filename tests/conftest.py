"""Shared fixtures: each service fixture lives in its own module under tests/fixtures/; plain test
data lives in tests/factories.py."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.pipeline",
    "tests.fixtures.sandbox",
    "tests.fixtures.dead_letters",
]
