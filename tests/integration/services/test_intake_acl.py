"""The Redis user docs/intake.md tells operators to give an upstream: it may XADD to the intake
stream and do nothing else.

The `ACL SETUSER` line is the one the page shows (its `intake-acl` section), run with the real
`redis-cli` against a private `redis-server` (the user goes away with it).
"""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import pytest
import redis

from tests.docs import doc_section
from worker.core.keys import Keys

pytestmark = pytest.mark.integration

KEYS = Keys()


def documented_acl() -> tuple[list[str], str, str]:
    """The documented `redis-cli ACL SETUSER ...` as argv, with its user name and password."""
    lines = doc_section("docs/intake.md", "intake-acl").splitlines()
    [command] = [shlex.split(line) for line in lines if line.startswith("redis-cli ")]
    assert command[1:3] == ["ACL", "SETUSER"], command
    [password] = [word[1:] for word in command if word.startswith(">")]
    return command, command[3], password


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["redis-cli", "-u", url, *args], capture_output=True, text=True, timeout=30, check=True
    )


def test_the_documented_user_may_only_append_to_the_intake_stream(own_redis_server: Any) -> None:
    """As that user, XADD to the intake stream works (redis-cli and redis-py); GET, DEL, XREAD,
    XRANGE, PING and XADD to any other key (the rejects stream included) are refused."""
    admin = own_redis_server.url
    command, user, password = documented_acl()
    assert cli(admin, *command[1:]).stdout.strip() == "OK"
    host_port = admin.split("://", 1)[1]
    upstream_url = f"redis://{user}:{password}@{host_port}"

    appended = cli(upstream_url, "XADD", KEYS.intake_stream(), "*", "order", '{"id": "1"}')
    assert appended.stdout.strip().split("-")[0].isdigit(), appended
    client: redis.Redis[bytes] = redis.Redis.from_url(upstream_url)
    try:
        assert client.xadd(KEYS.intake_stream(), {"order": b'{"id": "2"}'})
        refused = [
            lambda: client.get(KEYS.intake_stream()),
            lambda: client.delete(KEYS.intake_stream()),
            lambda: client.xread({KEYS.intake_stream(): "0"}),
            lambda: client.xrange(KEYS.intake_stream()),
            lambda: client.ping(),
            lambda: client.xadd(KEYS.intake_rejects(), {"order": b"{}"}),
            lambda: client.xadd("jr:other", {"order": b"{}"}),
        ]
        for call in refused:
            with pytest.raises(redis.exceptions.NoPermissionError):
                call()
    finally:
        client.close()
    assert "NOPERM" in cli(upstream_url, "GET", "jr:order:1").stdout
    owner: redis.Redis[bytes] = redis.Redis.from_url(admin)
    assert owner.xlen(KEYS.intake_stream()) == 2
    assert not owner.exists(KEYS.intake_rejects(), "jr:other")
    owner.close()
