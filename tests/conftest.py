"""Shared fixtures: each service fixture lives in its own module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.pipeline",
    "tests.fixtures.sandbox",
]
