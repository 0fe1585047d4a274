"""Every Redis key, queue name and task name used by jetti-relay.

Nothing else in the project spells a key: adapters, producers, the CLI and the tests all call
these functions, so a prefix change or a new index is made in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, unquote

from worker.core.limits import MAX_ORDER_KEY_CHARS

# Prefix of every key the product writes; lets one Redis serve several deployments.
DEFAULT_PREFIX = "jr"

# Celery names. Producers publish by name and never import the task module.
IMPORT_TASK = "jetti_relay.import_orders"
PUMP_TASK = "jetti_relay.pump"
SWEEP_TASK = "jetti_relay.sweep"
# The Celery queue of the default prefix; `orders_queue(prefix)` names every other one.
ORDERS_QUEUE = "jetti-relay.orders"
# The consumer group every stream intake process joins (one group: each entry is read once).
INTAKE_GROUP = "jetti-relay"

# Version of the message body {"v": MESSAGE_SCHEMA_VERSION, "keys": [...]}.
MESSAGE_SCHEMA_VERSION = 1


# Characters an order key keeps as is inside a Redis key name (RFC 3986 "unreserved"). Every
# other character, '%' included, becomes %XX per UTF-8 byte. worker/store/lua/prelude.lua (`enc`)
# implements the same rule for the keys a script only learns from an index.
_SAFE_KEY_PART = re.compile(r"[A-Za-z0-9._~-]*")


def encode_order_key(order_key: str) -> str:
    """The order key as it appears inside a Redis key name (percent-encoding, upper-case hex).

    Injective, and the result holds only [A-Za-z0-9._~%-]: no ':' (so `A:events` can never name
    the events list of `A`, nor `idx:all` an index), no '{' or '}' (Redis Cluster hash tags), no
    glob characters, whitespace, control characters or non-ASCII. A key made only of those
    characters is returned unchanged (the common case costs one regex match). Raises
    UnicodeEncodeError for a lone surrogate (not valid UTF-8, so Redis could not store it).
    Members of indexes and sets, and Jetti's externalId, stay the raw order key.
    """
    if _SAFE_KEY_PART.fullmatch(order_key):
        return order_key
    return quote(order_key, safe="")


def order_key_problem(order_key: object) -> str | None:
    """Why `order_key` cannot be an order key, or None when it can: a non-empty string of at
    most MAX_ORDER_KEY_CHARS characters that UTF-8 can encode (Redis stores bytes). The one
    check producers (at the edge) and the worker (per message entry) apply (reliability #9)."""
    if not isinstance(order_key, str) or not order_key:
        return "the order key is not a non-empty string"
    if len(order_key) > MAX_ORDER_KEY_CHARS:
        return (
            f"the order key (id prefix + id) has {len(order_key)} characters, "
            f"at most {MAX_ORDER_KEY_CHARS}"
        )
    if not order_key.isascii():
        try:
            order_key.encode("utf-8")
        except UnicodeEncodeError:
            return "the order key is not valid Unicode (a lone surrogate)"
    return None


def orders_queue(prefix: str = DEFAULT_PREFIX) -> str:
    """The Celery queue of the deployment whose key prefix is `prefix`.

    Two deployments on one Redis database (two prefixes) must never consume each other's
    messages: a worker would look the other's keys up in its own ledger and drop them. The
    default prefix keeps the queue name it always had, so an upgrade strands no message.
    """
    return ORDERS_QUEUE if prefix == DEFAULT_PREFIX else f"{ORDERS_QUEUE}.{prefix}"


def decode_order_key(part: str) -> str:
    """Inverse of `encode_order_key` (for operator tools that read key names)."""
    return unquote(part, errors="strict")


class Keys:
    """Key builder for one prefix.

    Every per-order key name holds `encode_order_key(order_key)`, never the raw key; every
    index and global key has a shape no encoded order key can produce
    (tests/unit/core/test_keys.py).
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def parts(self, build: Callable[[str], str]) -> tuple[str, str]:
        """(head, tail) of the key names `build` (a per-order builder of this object) makes:
        `build(k) == head + encode_order_key(k) + tail`, for scripts that derive per-order key
        names from order keys they read in an index (worker/store/lua/prelude.lua)."""
        # A run of '~' longer than the prefix appears neither in the prefix nor in the fixed
        # words, and encoding leaves it unchanged: it marks where the encoded key goes.
        mark = "~" * (len(self.prefix) + 8)
        head, tail = build(mark).split(mark)
        return head, tail

    def orders_queue(self) -> str:
        """The Celery queue this deployment's workers consume (`orders_queue(prefix)`)."""
        return orders_queue(self.prefix)

    # --- intake -------------------------------------------------------------------------
    def intake_stream(self) -> str:
        """Stream: raw orders appended by upstream with XADD (field `order`, optional
        `source` and `id_prefix`), read by the intake's consumer group."""
        return f"{self.prefix}:intake"

    def intake_rejects(self) -> str:
        """Stream (capped): intake entries refused, with the reason and the original bytes."""
        return f"{self.prefix}:intake:rejects"

    def replication_fence(self) -> str:
        """String (a counter): written before each WAIT that confirms upstream's orders reached
        the replicas, so the WAIT covers every earlier write (`worker.store.replication`)."""
        return f"{self.prefix}:replication:fence"

    # --- ledger -------------------------------------------------------------------------
    def order(self, order_key: str) -> str:
        """Hash: one order's ledger entry."""
        return f"{self.prefix}:order:{encode_order_key(order_key)}"

    def order_events(self, order_key: str) -> str:
        """List: the order's timeline (received versions, deliveries, attempts, outcomes)."""
        return f"{self.prefix}:order:{encode_order_key(order_key)}:events"

    def order_attempts(self, order_key: str) -> str:
        """List: the order's submission attempts (JSON `Attempt` objects), oldest first."""
        return f"{self.prefix}:order:{encode_order_key(order_key)}:attempts"

    def shed_queue(self) -> str:
        """Sorted set: settled orders still holding their raw body, by the time they settled."""
        return f"{self.prefix}:idx:shed"

    def tombstone_index(self) -> str:
        """Sorted set: shed orders (tombstones), scored by the time the tombstone expires."""
        return f"{self.prefix}:idx:tombstone"

    def state_index(self, state: str) -> str:
        """Sorted set: order keys in `state`, scored by the time they entered it (epoch s)."""
        return f"{self.prefix}:idx:state:{state}"

    def order_key_index(self) -> str:
        """Sorted set (every score 0): every order key the ledger holds, raw, for lexicographic
        prefix search (ZRANGEBYLEX) whatever the encoding of the key names."""
        return f"{self.prefix}:idx:keys"

    def received_index(self) -> str:
        """Sorted set: every order key the ledger holds, by the time its latest version (or a
        replay) was received (epoch s): the orders search by time."""
        return f"{self.prefix}:idx:received"

    def enqueued_index(self) -> str:
        """Sorted set: order keys by the time their latest version was enqueued (latency)."""
        return f"{self.prefix}:idx:enqueued"

    def sequence(self) -> str:
        """Counter: arrival sequence, the tie-breaker of order versions."""
        return f"{self.prefix}:seq"

    def lock(self, order_key: str) -> str:
        """String: the per-order lock (SET NX PX). begin_batch.lua also keeps, for as long as
        the locks, the list of the filler orders one claim took under this head and tail with
        `%fill:<fill token>` in place of the order key (no encoded key holds `%f`)."""
        return f"{self.prefix}:lock:{encode_order_key(order_key)}"

    # --- retries and fleet controls -----------------------------------------------------
    def retry_schedule(self) -> str:
        """Sorted set: order keys waiting for a retry, scored by due time (epoch s)."""
        return f"{self.prefix}:retry"

    def rate_bucket(self) -> str:
        """Hash: the fleet-wide token bucket."""
        return f"{self.prefix}:rate:bucket"

    def blocked_until(self) -> str:
        """String: epoch seconds until which Jetti asked the fleet to back off (after a 429)."""
        return f"{self.prefix}:rate:blocked_until"

    def breaker(self) -> str:
        """Hash: the fleet circuit breaker (state, reason, since)."""
        return f"{self.prefix}:breaker"

    def leader(self, role: str) -> str:
        """String: leader lease for a periodic role (pump, sweeper, reconciler)."""
        return f"{self.prefix}:leader:{role}"

    def heartbeat(self, role: str) -> str:
        """Hash: last run time of a periodic role, per host (read by `health`)."""
        return f"{self.prefix}:heartbeat:{role}"

    def counters(self) -> str:
        """Hash: monotonically increasing counters (submissions by outcome and status)."""
        return f"{self.prefix}:counters"

    def minute_counters(self, minute: int) -> str:
        """Hash: the counters of one minute (`minute` = epoch s // 60), for the console's last
        hour; expires MINUTE_COUNTERS_KEPT_S after its minute (worker.core.limits)."""
        return f"{self.prefix}:counters:m:{minute}"

    def latency(self) -> str:
        """Hash: enqueue-to-acceptance latency histogram buckets."""
        return f"{self.prefix}:latency"

    # --- dead letters -------------------------------------------------------------------
    def dead(self, order_key: str) -> str:
        """Hash: one dead-letter entry."""
        return f"{self.prefix}:dead:{encode_order_key(order_key)}"

    def dead_attempts(self, order_key: str) -> str:
        """List: every attempt recorded for a dead-letter entry (JSON objects)."""
        return f"{self.prefix}:dead:{encode_order_key(order_key)}:attempts"

    def dead_history(self, order_key: str) -> str:
        """List: a dead-letter entry's status changes (dead, replayed, resolved; JSON objects)."""
        return f"{self.prefix}:dead:{encode_order_key(order_key)}:history"

    def dead_email_index(self, email_hash: str) -> str:
        """Set: dead-letter order keys whose raw order or payload has the email with this hash."""
        return f"{self.prefix}:dead:idx:email:{email_hash}"

    def dead_index(self) -> str:
        """Sorted set: all dead-letter entries by the time they were (last) dead-lettered."""
        return f"{self.prefix}:dead:idx:all"

    def dead_reason_index(self, reason: str) -> str:
        """Sorted set: dead-letter entries with `reason`, by time."""
        return f"{self.prefix}:dead:idx:reason:{reason}"

    def dead_status_index(self, status: str) -> str:
        """Sorted set: dead-letter entries with `status`, by time."""
        return f"{self.prefix}:dead:idx:status:{status}"

    def audit_log(self) -> str:
        """Stream: who replayed, purged or erased what, and when."""
        return f"{self.prefix}:audit"

    # --- jobs (bulk work run by the worker fleet) --------------------------------------
    def jobs(self) -> str:
        """Sorted set: job ids by creation time (epoch s)."""
        return f"{self.prefix}:jobs"

    def job(self, job_id: str) -> str:
        """Hash: one job (kind, filter, state, progress, who started it)."""
        return f"{self.prefix}:job:{job_id}"

    def job_keys(self, job_id: str) -> str:
        """List: the order keys a job works through, fixed when it was confirmed."""
        return f"{self.prefix}:job:{job_id}:keys"

    # --- notifications ------------------------------------------------------------------
    def alerts(self) -> str:
        """Hash: alert name -> JSON state (firing since, last sent, acknowledged, silenced)."""
        return f"{self.prefix}:alerts"

    # --- reconciler ---------------------------------------------------------------------
    def reconcile_checkpoint(self) -> str:
        """String: epoch s up to which the reconciler has read Jetti's import log (window end)."""
        return f"{self.prefix}:reconcile:checkpoint"

    def reconcile_stats(self) -> str:
        """Hash: the reconciler's figures (last run, counts) for metrics, health, order show."""
        return f"{self.prefix}:reconcile:stats"

    def reconcile_acted(self) -> str:
        """Sorted set: import-log row ids the reconciler dead-lettered an order for, by row time
        (a replay that resends the same payload is not killed again by the same old row)."""
        return f"{self.prefix}:reconcile:acted"

    def api_bucket(self, kind: str) -> str:
        """Hash: fleet token bucket for Jetti's sync API, per kind (`read`, `write`)."""
        return f"{self.prefix}:rate:api:{kind}"

    def api_blocked_until(self, kind: str) -> str:
        """String: epoch s until which sync-API calls of `kind` back off (after a 429)."""
        return f"{self.prefix}:rate:api:{kind}:blocked_until"


class LegacyKeys:
    """The per-order key names before the order key was encoded (jetti-relay before issue 12),
    for `jetti-relay migrate-keys` only: `{prefix}:order:{raw key}` and so on. Index and global
    key names did not change, so only these builders exist here."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def order(self, order_key: str) -> str:
        return f"{self.prefix}:order:{order_key}"

    def order_events(self, order_key: str) -> str:
        return f"{self.prefix}:order:{order_key}:events"

    def order_attempts(self, order_key: str) -> str:
        return f"{self.prefix}:order:{order_key}:attempts"

    def lock(self, order_key: str) -> str:
        return f"{self.prefix}:lock:{order_key}"

    def dead(self, order_key: str) -> str:
        return f"{self.prefix}:dead:{order_key}"

    def dead_attempts(self, order_key: str) -> str:
        return f"{self.prefix}:dead:{order_key}:attempts"

    def dead_history(self, order_key: str) -> str:
        return f"{self.prefix}:dead:{order_key}:history"

    def dead_owner_of(self, name: str) -> str | None:
        """The order key whose legacy dead-letter hash is named `name` (an index name an order
        id such as `idx:all` took over), or None when `name` is not under `{prefix}:dead:`."""
        head = f"{self.prefix}:dead:"
        return name[len(head) :] if name.startswith(head) else None
