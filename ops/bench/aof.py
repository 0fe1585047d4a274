"""A private Redis with AOF for the benches, and the backups and restores of its files
(`bench footprint`, `bench restore-drill`; docs/scaling.md, "Backup and restore").

A backup is taken the way docs/scaling.md tells an operator to: the AOF directory with automatic
rewrites paused (a rewrite replaces the files under the copy), or `BGSAVE` and `dump.rdb`.
A restore starts a new server on the copy, in a new folder.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import click


def start_aof_redis(services: Any, folder: Path, name: str, *, auto_rewrite: bool = False) -> Any:
    """A private redis-server in `folder` with AOF (`appendfsync everysec`, the compose file's);
    automatic AOF rewrites off unless `auto_rewrite` (so `aof_current_size` only grows). Returns
    a `RedisService`."""
    import redis

    from ops.harness.ports import wait_for
    from ops.harness.redis import RedisProcess, RedisService, redis_server_binary

    binary, origin = redis_server_binary()
    folder.mkdir(parents=True, exist_ok=True)
    extra = () if auto_rewrite else ("--auto-aof-rewrite-percentage", "0")
    spec = RedisProcess(folder, binary=binary, extra_args=extra)
    process = services.start(name, spec.argv(), os.environ)
    wait_for(
        lambda: redis.Redis.from_url(spec.url).ping(),
        f"redis-server ({binary})",
        process=process,
        log=services.log_path(name),
    )
    return RedisService(url=spec.url, pid=process.pid, origin=origin)


def wait_until(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out waiting for {what}")
        time.sleep(0.05)


def backup_aof(client: Any, live: Path, target: Path) -> dict[str, Any]:
    """Copy the AOF directory of the live server in `live` to `target`: automatic rewrites
    paused while copying (a rewrite replaces the files under the copy), then back on."""
    started = time.monotonic()
    client.config_set("auto-aof-rewrite-percentage", "0")
    try:
        wait_until(
            lambda: not int(client.info("persistence")["aof_rewrite_in_progress"]), "rewrite"
        )
        shutil.copytree(live / "appendonlydir", target)
    finally:
        client.config_set("auto-aof-rewrite-percentage", "100")
    return {"seconds": time.monotonic() - started, "bytes": _size(target)}


def backup_rdb(client: Any, live: Path, target: Path) -> dict[str, Any]:
    """BGSAVE, wait for it to finish, copy `dump.rdb` to `target`."""
    started = time.monotonic()
    before = int(client.info("persistence")["rdb_last_save_time"])
    wait_until(lambda: not int(client.info("persistence")["aof_rewrite_in_progress"]), "rewrite")
    client.bgsave()
    wait_until(
        lambda: (
            not int(client.info("persistence")["rdb_bgsave_in_progress"])
            and int(client.info("persistence")["rdb_last_save_time"]) >= before
            and (live / "dump.rdb").exists()
        ),
        "BGSAVE",
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(live / "dump.rdb", target)
    return {"seconds": time.monotonic() - started, "bytes": _size(target)}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def restore(services: Any, kind: str, backup: Path, folder: Path) -> tuple[Any, float]:
    """A new server in `folder` from `backup` (kind `aof` or `rdb`); (RedisService, seconds
    from the first file copied to a server that answers with AOF on)."""
    import redis

    started = time.monotonic()
    folder.mkdir(parents=True)
    if kind == "aof":
        shutil.copytree(backup, folder / "appendonlydir")
        service = start_aof_redis(services, folder, f"restored-{kind}", auto_rewrite=True)
    else:
        # Started with AOF on and no AOF directory, Redis would begin empty and ignore the RDB:
        # load the RDB with AOF off, then turn AOF on (it writes a fresh AOF from memory).
        shutil.copy2(backup, folder / "dump.rdb")
        service = _start_from_rdb(services, folder, f"restored-{kind}")
        client: redis.Redis[bytes] = redis.Redis.from_url(service.url)
        client.config_set("appendonly", "yes")
        wait_until(
            lambda: (
                not int(client.info("persistence")["aof_rewrite_in_progress"])
                and int(client.info("persistence")["aof_enabled"])
            ),
            "the first AOF rewrite",
        )
        client.close()
    return service, time.monotonic() - started


def _start_from_rdb(services: Any, folder: Path, name: str) -> Any:
    import redis

    from ops.harness.ports import wait_for
    from ops.harness.redis import RedisProcess, RedisService, redis_server_binary

    binary, origin = redis_server_binary()
    spec = RedisProcess(
        folder, appendonly=False, binary=binary, extra_args=("--dbfilename", "dump.rdb")
    )
    process = services.start(name, spec.argv(), os.environ)
    wait_for(lambda: redis.Redis.from_url(spec.url).ping(), name, process=process)
    return RedisService(url=spec.url, pid=process.pid, origin=origin)
