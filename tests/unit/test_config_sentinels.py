"""`jetti-relay config check` with Sentinel: the derived broker URL is shown, its passwords not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.commands.config import config

ENV = {
    "JETTI_RELAY_REDIS_SENTINELS": "127.0.0.1:26379,127.0.0.1:26380",
    "JETTI_RELAY_REDIS_URL": "redis://:node-secret@127.0.0.1:6379/2",
    "JETTI_RELAY_REDIS_SENTINEL_PASSWORD": "sentinel-secret",
    "JETTI_RELAY_WEBHOOK_HASH": "hash",
}


def test_config_check_masks_every_password_of_the_sentinel_broker_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One sentinel:// URL per sentinel, each password masked; the source names the variable
    it was derived from; the sentinels' password shows as *** only."""
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in [n for n in os.environ if n.startswith("JETTI_RELAY_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(config, ["check"], env=ENV)
    assert "node-secret" not in result.output
    assert "sentinel-secret" not in result.output
    [broker] = [line for line in result.output.splitlines() if line.startswith("broker_url")]
    assert "sentinel://:***@127.0.0.1:26379/2;sentinel://:***@127.0.0.1:26380/2" in broker
    assert "[derived from JETTI_RELAY_REDIS_SENTINELS]" in broker
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("redis_sentinel_password")] == [
        "***"
    ]
