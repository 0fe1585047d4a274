"""Fixtures of the store tests: a key prefix of their own and a ledger with short retention."""

from __future__ import annotations

import pytest
import redis

from tests.integration.store.ledger_steps import KEYS
from worker.core.keys import Keys
from worker.store.ledger import Ledger


@pytest.fixture
def keys() -> Keys:
    return KEYS


@pytest.fixture
def ledger(redis_client: redis.Redis[bytes], keys: Keys) -> Ledger:
    """Body TTL 100 s, tombstone TTL 1000 s."""
    return Ledger(redis_client, keys, body_ttl_s=100.0, tombstone_ttl_s=1000.0)
