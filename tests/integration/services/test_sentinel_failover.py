"""Redis Sentinel end to end (issue 15, items 1 and 4): one replicated group for the module (a
primary, two replicas, three sentinels, passwords on the data nodes and on the sentinels), real
`jetti-relay` processes, the sandbox over HTTP.

- `health` and the metrics report the replication: replicas, lag, the sentinels' view, epoch.
- The worker refuses, in one line with exit 2, sentinels it cannot reach or authenticate with, a
  master name they do not monitor, and fewer replicas than JETTI_RELAY_MIN_REPLICAS_ACK.
- A ledger script cut off by a kill -9 of the primary surfaces as a retryable connection error
  (ClaimFailed for the processor), and on the new primary, whose script cache is empty, the
  same adapters reload the script (NOSCRIPT) and work on.
- A running worker follows a failover without a restart: orders enqueued and XADDed after it
  are delivered, heartbeats and the reconciler resume, a CLI run afterwards works.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ops.harness.ha import RedisHA
from ops.harness.ports import free_port
from ops.harness.workers import worker_target_env
from producers import enqueue
from tests.factories import raw_order
from tests.fixtures.pipeline import FAST_ENV, PipelineFactory, wait_until
from tests.fixtures.sandbox import Sandbox
from worker import wiring
from worker.core.errors import ClaimFailed
from worker.core.states import OrderState
from worker.settings import Settings
from worker.store.scripts import source

pytestmark = pytest.mark.integration

NODE_PASSWORD = "node-pw-7c1"
SENTINEL_PASSWORD = "sentinel-pw-9e4"
# A refusal comes before Celery starts: well under this.
REFUSAL_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHA]:
    group = RedisHA(
        tmp_path_factory.mktemp("ha"),
        replicas=2,
        sentinels=3,
        password=NODE_PASSWORD,
        sentinel_password=SENTINEL_PASSWORD,
        # 1 s made the sentinels fail over twice in a row under CI load (the new primary missed
        # their pings while the other replica synced from it), losing the worker's writes that
        # had not reached the second replica; one failover per kill is what these tests check.
        down_after_ms=3000,
        failover_timeout_ms=8000,
    ).start()
    yield group
    group.stop()


def relay_env(ha: RedisHA, **changes: str | None) -> dict[str, str]:
    """This process's environment without JETTI_RELAY_*, plus the fast test settings, the
    group's variables and `changes` (None removes one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")}
    env.update(FAST_ENV)
    env.update(ha.settings_env())
    env["JETTI_RELAY_WEBHOOK_HASH"] = "unused"
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def relay(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`jetti-relay ARGS` to completion; a worker that starts instead of refusing is killed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=REFUSAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def settings_of(env: dict[str, str]) -> Settings:
    """Settings from the JETTI_RELAY_* entries of `env`, as a process started with it reads."""
    fields = {
        k.removeprefix("JETTI_RELAY_").lower(): v
        for k, v in env.items()
        if k.startswith("JETTI_RELAY_") and k != "JETTI_RELAY_READY_FILE"
    }
    return Settings(_env_file=None, **fields)  # type: ignore[arg-type]


def fail_over(ha: RedisHA) -> float:
    """kill -9 the primary, wait for the sentinels to promote a replica; seconds it took."""
    old = ha.primary()
    assert old.process is not None
    old.process.kill()
    old.process.wait(timeout=10)
    old.process = None
    return ha.wait_failover(old.port)


def bring_back(ha: RedisHA) -> None:
    """Restart every stopped node and make the group whole again around the current primary
    (`RedisHA.heal`: two failovers in a row can leave a node following the primary that lost)."""
    ha.heal()


def test_health_reports_the_replication_through_password_protected_sentinels(
    ha: RedisHA, tmp_path: Path
) -> None:
    """`health --only replication`: two replicas online, three sentinels seeing the primary at
    quorum 2, no failover yet; the metrics export the same; no password is printed."""
    env = relay_env(ha, JETTI_RELAY_MIN_REPLICAS_ACK="1")
    done = relay(["health", "--only", "replication", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    [check] = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "replication"]
    assert check["status"] == "ok" and check["value"] == 2, check
    assert "2 replica(s) online, 1 required" in check["detail"]
    assert "3 of 3 sentinels see it (quorum 2), epoch 0, never failed over" in check["detail"]
    assert NODE_PASSWORD not in done.stdout + done.stderr
    assert SENTINEL_PASSWORD not in done.stdout + done.stderr

    from ops.monitoring.replication_families import replication
    from ops.monitoring.sources import Sources

    src = Sources.from_settings(settings_of(env))
    try:
        figures = {
            (m.name, tuple(s.labels.items())): s.value
            for m in replication(src, time.time())
            for s in m.samples
        }
    finally:
        src.client.close()
    assert figures[("jetti_relay_redis_replicas_online", ())] == 2
    assert figures[("jetti_relay_redis_min_replicas_ack", ())] == 1
    assert figures[("jetti_relay_redis_role", (("role", "master"),))] == 1
    assert figures[("jetti_relay_redis_sentinels_seeing_primary", ())] == 3
    assert figures[("jetti_relay_redis_last_failover_timestamp_seconds", ())] == 0
    assert len([k for k in figures if k[0] == "jetti_relay_redis_replica_lag_bytes"]) == 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"JETTI_RELAY_REDIS_SENTINEL_MASTER": "no-such-master"}, "_SENTINEL_MASTER"),
        ({"JETTI_RELAY_REDIS_SENTINEL_PASSWORD": "wrong"}, "_SENTINEL_PASSWORD"),
        ({"JETTI_RELAY_REDIS_SENTINELS": "SILENT"}, "JETTI_RELAY_REDIS_SENTINELS"),
        ({"JETTI_RELAY_MIN_REPLICAS_ACK": "3"}, "JETTI_RELAY_MIN_REPLICAS_ACK=3"),
    ],
    ids=["unknown-master", "wrong-sentinel-password", "unreachable", "too-few-replicas"],
)
def test_the_worker_refuses_a_sentinel_setup_it_cannot_rely_on(
    ha: RedisHA, tmp_path: Path, changes: dict[str, str], named: str
) -> None:
    """One line naming the variable to fix, exit 2, before Celery starts."""
    if changes.get("JETTI_RELAY_REDIS_SENTINELS") == "SILENT":
        changes = {"JETTI_RELAY_REDIS_SENTINELS": f"127.0.0.1:{free_port()}"}
    done = relay(["worker", "--no-pump"], relay_env(ha, **changes), tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    refusals = [line for line in done.stderr.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1 and named in refusals[0], done.stderr[-2000:]
    assert "celery@" not in done.stdout + done.stderr  # refused before Celery started
    assert SENTINEL_PASSWORD not in done.stderr and NODE_PASSWORD not in done.stderr


def sandbox_env(ha: RedisHA, sandbox: Sandbox, **changes: str) -> dict[str, str]:
    """`relay_env` pointed at the sandbox's async endpoint (Redis: the group's sentinels)."""
    target = worker_target_env(
        "unused",
        base_url=sandbox.base_url,
        webhook_hash=sandbox.webhook_hash,
        api_token=sandbox.api_token,
        channel_id=sandbox.channel_id,
    )
    del target["JETTI_RELAY_REDIS_URL"], target["JETTI_RELAY_BROKER_URL"]
    return relay_env(ha, **target, JETTI_RELAY_JETTI_MODE="async", **changes)


def test_a_script_cut_off_by_the_failover_fails_over_cleanly(ha: RedisHA, sandbox: Sandbox) -> None:
    """The primary is frozen while the processor claims a batch, then killed. The claim either
    completes on the new primary (redis-py retries a connection error for about 4 s, longer
    than the failover) or raises ClaimFailed (its message goes back to the queue): never a
    crash. The new primary has no script cached (the cache is not replicated): the same
    adapters reload on NOSCRIPT and write on."""
    from worker.runtime import build_runtime

    runtime = build_runtime(settings_of(sandbox_env(ha, sandbox)))
    record_sha = hashlib.sha1(source("record_batch", prelude=True).encode()).hexdigest()
    key = "ha-inflight-1"
    enqueue([raw_order(key)], client=runtime.redis, publisher=runtime.publisher)
    old = ha.primary()
    assert old.process is not None
    outcome: list[BaseException | None] = []

    def claim() -> None:
        try:
            runtime.processor.handle_batch([key], task_id="inflight")
            outcome.append(None)
        except BaseException as exc:  # the thread reports whatever it raised
            outcome.append(exc)

    try:
        os.kill(old.process.pid, signal.SIGSTOP)
        thread = threading.Thread(target=claim)
        thread.start()
        time.sleep(0.3)  # the claim now waits on the frozen primary
        fail_over(ha)
        thread.join(timeout=60)
        assert outcome in ([None],) or isinstance(outcome[0], ClaimFailed), outcome
        if outcome[0] is not None:
            assert isinstance(outcome[0].__cause__, redis.ConnectionError | redis.TimeoutError)
        new = ha.node_client(ha.primary())
        try:
            assert new.execute_command("SCRIPT", "EXISTS", record_sha) == [0]
            enqueue([raw_order("ha-inflight-2")], client=runtime.redis, publisher=runtime.publisher)
            assert new.execute_command("SCRIPT", "EXISTS", record_sha) == [1]
        finally:
            new.close()
        runtime.processor.handle_batch([key, "ha-inflight-2"], task_id="after")
        wait_until(lambda: bool(sandbox.sales(key) and sandbox.sales("ha-inflight-2")))
    finally:
        runtime.close()
        bring_back(ha)


def test_a_running_worker_follows_a_failover_without_a_restart(
    ha: RedisHA, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Orders before the kill, and orders enqueued and XADDed to the new primary after it, are
    delivered by the same worker process; the sweeper's heartbeat and the reconciler's runs
    resume; `order show` and `health` run afterwards work; health shows the failover."""
    env = sandbox_env(
        ha, sandbox, JETTI_RELAY_RECONCILE_INTERVAL_S="0.5", JETTI_RELAY_RECONCILE_GRACE_S="1"
    )
    settings = settings_of(env)
    client = wiring.redis_client(settings)
    publisher = wiring.publisher(settings)
    stores = wiring.build_stores(settings, client)
    factory = PipelineFactory(tmp_path=tmp_path, base_env=env)
    try:
        worker = factory(concurrency=2)
        before = [f"ha-before-{n}" for n in range(3)]
        enqueue([raw_order(k) for k in before], client=client, publisher=publisher)
        wait_until(lambda: all(sandbox.sales(k) for k in before), what="orders before the failover")

        fail_over(ha)
        killed_at = time.time()
        after = [f"ha-after-{n}" for n in range(3)]
        enqueue([raw_order(k) for k in after], client=client, publisher=publisher)
        client.xadd(stores.keys.intake_stream(), {"order": json.dumps(raw_order("ha-xadd-1"))})
        delivered = [*after, "ha-xadd-1"]
        wait_until(
            lambda: all(sandbox.sales(k) for k in delivered),
            timeout_s=45,
            what="orders enqueued after the failover to reach Jetti",
        )
        assert worker.alive(), worker.log()

        def resumed(role: str) -> bool:
            beats = client.hgetall(stores.keys.heartbeat(role))
            return max((float(v) for v in beats.values()), default=0.0) > killed_at

        wait_until(lambda: resumed("sweeper") and resumed("pump"), what="heartbeats resume")
        from worker.store.reconcile_state import read_status

        wait_until(
            lambda: (read_status(client, stores.keys).last_run_at or 0) > killed_at,
            what="a reconciler run after the failover",
        )
        entry = stores.ledger.get(after[0])
        assert entry is not None
        assert entry.state in {OrderState.SUBMITTED, OrderState.CONFIRMED}

        shown = relay(["order", "show", after[0], "--json"], env, tmp_path)
        assert shown.returncode == 0, shown.stderr
        health = relay(["health", "--only", "replication", "--json"], env, tmp_path)
        checks = json.loads(health.stdout)["checks"]
        [check] = [c for c in checks if c["name"] == "replication"]
        assert check["status"] == "ok", check
        assert "epoch 0" not in check["detail"] and "last failover" in check["detail"], check
    finally:
        factory.stop_all()
        client.close()
        bring_back(ha)
