"""Scenarios 12 and 13: faults outside the pipeline's code (issue 12, section Chaos).

12, configuration faults: a worker started with a misspelt variable name, or with an empty
webhook hash, must refuse to start (exit 2, one line naming the variable, no secret); one pointed
at a wrong async path must open the breaker and dead-letter nothing. After the configuration is
fixed, every order is delivered.

13, Retry-After extremes: Jetti (or a proxy in front of it) answers 429 with a Retry-After of
`inf`, `nan`, garbage, `1e9` and an HTTP date in 2100. The fleet never blocks longer than
JETTI_RELAY_RETRY_AFTER_MAX_S (2 s here), no order waits longer than that plus a backoff, no
attempt is spent, and everything is delivered.
"""

from __future__ import annotations

import time

from ops.chaos.books import Books
from ops.chaos.cluster import START_TIMEOUT_S, Cluster
from ops.chaos.flow import ScenarioResult, raw_order, record
from ops.chaos.scenarios import Scale, finish
from worker.core.states import OrderState
from worker.store.breaker import Breaker

# A plausible typo of JETTI_RELAY_MAX_ATTEMPTS, set next to a correct configuration.
MISSPELT_NAME = "JETTI_RELAY_MAX_ATEMPTS"
MEANT_NAME = "JETTI_RELAY_MAX_ATTEMPTS"
# The async webhook path without its `.json`: Jetti (here the sandbox) answers 404.
WRONG_ASYNC_PATH = "/webhooks/custom-channels/manual-sale"
# Longest wait for the wrong-path worker to trip the breaker or dead-letter an order.
WRONG_PATH_WAIT_S = 20.0
# Retry-After values no sane server sends, and the bound the scenario's workers obey.
RETRY_AFTER_EXTREMES = ("inf", "nan", "in a while", "1e9", "Fri, 01 Jan 2100 00:00:00 GMT")
RETRY_AFTER_MAX_S = 2.0
# Clock slack when a block or a due time read from Redis is compared with the bound.
CLOCK_SLACK_S = 1.0
# Longest wait, per extreme, for Jetti to see a request again after the fleet was blocked.
EXTREME_WAIT_S = 15.0


# --- 12 --------------------------------------------------------------------------------------
def config_faults(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Misspelt variable, empty webhook hash, wrong async path, then the fixed configuration."""
    books = Books()
    per_phase = max(2, scale.orders // 8)
    failures: list[str] = []

    def orders(phase: str) -> None:
        raws = [raw_order(f"cfg-{phase}-{n}") for n in range(per_phase)]
        record(books, raws, {r.position for r in cluster.enqueue(raws).rejections})

    orders("misspelt")
    failures += _refused(
        cluster, "a misspelt variable name", (MISSPELT_NAME, MEANT_NAME), {MISSPELT_NAME: "5"}
    )
    orders("empty-hash")
    failures += _refused(
        cluster, "an empty webhook hash", ("WEBHOOK_HASH",), {"JETTI_RELAY_WEBHOOK_HASH": ""}
    )
    orders("wrong-path")
    failures += _wrong_path(cluster, scale, books)
    fault_end = time.time()
    cluster.start_worker(concurrency=scale.concurrency)
    result = finish(12, "configuration faults", cluster, books, fault_end)
    result.failures.extend(failures)
    return result


def _refused(
    cluster: Cluster, label: str, must_name: tuple[str, ...], env: dict[str, str]
) -> list[str]:
    """Start a worker with `env`; it must exit 2 with one line naming `must_name`."""
    worker = cluster.start_worker(concurrency=1, wait=False, extra_env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and worker.alive() and not worker.ready_file.exists():
        time.sleep(0.1)
    if worker.alive():
        worker.stop()
        _resume(cluster)
        return [f"a worker with {label} started (expected: exit 2, one line)"]
    lines = [line for line in worker.log().splitlines() if line.strip()]
    code = worker.process.returncode
    problems = []
    if code != 2:
        problems.append(f"a worker with {label} exited {code}, not 2")
    if len(lines) != 1:
        problems.append(
            f"a worker with {label} wrote {len(lines)} lines, not one: "
            f"{[line[:100] for line in lines[:3]]}"
        )
    text = "\n".join(lines)
    missing = [name for name in must_name if name not in text]
    if missing:
        problems.append(f"the refusal of {label} does not name {', '.join(missing)}")
    secrets = (cluster.sandbox.webhook_hash, cluster.sandbox.api_token)
    if any(secret in text for secret in secrets):
        problems.append(f"the refusal of {label} shows a secret")
    return problems


def _resume(cluster: Cluster) -> None:
    """What an operator does after stopping a misconfigured worker that paused the fleet (a 401
    from an empty hash): clear the breaker and the fleet block, so later phases start clean."""
    assert cluster.client is not None
    cluster.client.delete(cluster.keys.breaker(), cluster.keys.blocked_until())


def _wrong_path(cluster: Cluster, scale: Scale, books: Books) -> list[str]:
    """A worker posting to a wrong async path: the breaker opens, nothing is dead-lettered."""
    assert cluster.client is not None
    breaker = Breaker(cluster.client, cluster.keys, probe_s=1.0)
    worker = cluster.start_worker(
        concurrency=scale.concurrency,
        JETTI_RELAY_JETTI_ASYNC_URL=cluster.sandbox.base_url + WRONG_ASYNC_PATH,
    )
    deadline = time.monotonic() + WRONG_PATH_WAIT_S
    while time.monotonic() < deadline:
        dead = cluster.ledger.state_counts().get(OrderState.DEAD, 0)
        if dead or breaker.state().state != "closed":
            break
        time.sleep(0.1)
    tripped = breaker.state()
    worker.stop()
    dead = cluster.ledger.state_counts().get(OrderState.DEAD, 0)
    problems = []
    if dead:
        problems.append(
            f"{dead} orders dead-lettered by a wrong async path (a configuration "
            "fault, not the orders' fault)"
        )
    if tripped.state == "closed" or tripped.status != 404:
        problems.append(
            f"a wrong async path did not open the breaker on 404 (breaker "
            f"{tripped.state}, status {tripped.status})"
        )
    return problems


# --- 13 --------------------------------------------------------------------------------------
def retry_after_extremes(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """429 with absurd Retry-After values, one after the other; see the module docstring."""
    assert cluster.client is not None
    for _ in range(scale.workers):
        cluster.start_worker(
            concurrency=scale.concurrency, JETTI_RELAY_RETRY_AFTER_MAX_S=f"{RETRY_AFTER_MAX_S:g}"
        )
    books = Books()
    per = max(2, scale.orders // 8)
    longest_block_s = longest_due_s = 0.0
    stuck: list[str] = []
    for n, header in enumerate(RETRY_AFTER_EXTREMES):
        cluster.sandbox.set_faults(rate_429=1.0, retry_after_header=header)
        before = _responses_429(cluster)
        raws = [raw_order(f"ra{n}-{i}") for i in range(per)]
        record(books, raws, {r.position for r in cluster.enqueue(raws).rejections})
        # Two 429s at least: the fleet was blocked by the first and asked again afterwards.
        deadline = time.monotonic() + EXTREME_WAIT_S
        while _responses_429(cluster) < before + 2 and time.monotonic() < deadline:
            block_s, due_s = _waits(cluster)
            longest_block_s, longest_due_s = (
                max(longest_block_s, block_s),
                max(longest_due_s, due_s),
            )
            time.sleep(0.05)
        if _responses_429(cluster) < before + 2:
            stuck.append(header)
        cluster.sandbox.set_faults(rate_429=0.0, retry_after_header=None)
    fault_end = time.time()
    result = finish(
        13,
        "Retry-After extremes",
        cluster,
        books,
        fault_end,
        longest_block_s=round(longest_block_s, 1),
        longest_retry_wait_s=round(longest_due_s, 1),
    )
    backoff_max_s = float(cluster.env["JETTI_RELAY_BACKOFF_MAX_S"])
    if longest_block_s > RETRY_AFTER_MAX_S + CLOCK_SLACK_S:
        result.failures.append(
            f"the fleet was blocked for {longest_block_s:.3g} s (bound {RETRY_AFTER_MAX_S:g} s)"
        )
    if longest_due_s > RETRY_AFTER_MAX_S + backoff_max_s + CLOCK_SLACK_S:
        result.failures.append(
            f"an order was scheduled {longest_due_s:.3g} s ahead (bound "
            f"{RETRY_AFTER_MAX_S:g} s + backoff)"
        )
    if stuck:
        result.failures.append(
            f"no request reached Jetti within {EXTREME_WAIT_S:g} s of a "
            f"429 with Retry-After {stuck}"
        )
    spent = sum(e.attempts for k in books.keys if (e := cluster.ledger.get(k)) is not None)
    if spent:
        result.failures.append(f"{spent} attempts spent on 429s")
    return result


def _responses_429(cluster: Cluster) -> int:
    return int(cluster.sandbox.stats()["requests"].get("async", {}).get("429", 0))


def _waits(cluster: Cluster) -> tuple[float, float]:
    """Seconds from now until the fleet block ends and until the last scheduled retry."""
    assert cluster.client is not None
    now = time.time()
    blocked = cluster.client.get(cluster.keys.blocked_until())
    last = cluster.client.zrange(cluster.keys.retry_schedule(), -1, -1, withscores=True)
    block_s = float(blocked) - now if blocked is not None else 0.0
    due_s = float(last[0][1]) - now if last else 0.0
    return block_s, due_s
