"""`jetti-relay sandbox`: run a local Jetti with fault injection (loopback only by default).

Exit codes: 0 after a clean shutdown, 2 for bad options (click's usage error).
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from ops.options import SANDBOX_MODULES, require_extra
from ops.sandbox.faults import Faults

DEFAULT_PORT = 8080


def load_variants(path: Path) -> frozenset[str]:
    """Variant externalIds and SKUs from a JSON file: a list, or {"variants": [...]}.

    Each item is a string or an object with `externalId` and/or `sku`. Raises click.BadParameter
    naming the file and the item.
    """
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from exc
    items = doc.get("variants") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise click.BadParameter(f'{path}: expected a list or {{"variants": [...]}}')
    known: set[str] = set()
    for index, item in enumerate(items):
        if isinstance(item, str | int):
            known.add(str(item))
        elif isinstance(item, dict) and (item.get("externalId") or item.get("sku")):
            known.update(str(item[k]) for k in ("externalId", "sku") if item.get(k))
        else:
            raise click.BadParameter(f"{path}: variants[{index}] needs an externalId or a sku")
    return frozenset(known)


def relay_variables(host: str, port: int, channel_id: int) -> list[str]:
    """`NAME=value` lines, under the relay's own variable names, that point a relay at this
    sandbox (tests/unit/test_settings_env.py feeds them to the relay's settings). The hash and
    token are the operator's own input and never echoed."""
    # A wildcard bind is reached over loopback from this machine (and plain http stays allowed).
    reach = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    base = f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"
    return [
        f"JETTI_RELAY_JETTI_ASYNC_URL={base}/webhooks/custom-channels/manual-sale.json",
        f"JETTI_RELAY_JETTI_API_URL={base}",
        f"JETTI_RELAY_CHANNEL_ID={channel_id}",
    ]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--webhook-hash",
    envvar="SANDBOX_WEBHOOK_HASH",
    required=True,
    help="Expected jetti-webhook-hash (async endpoint).",
)
@click.option(
    "--api-token",
    envvar="SANDBOX_API_TOKEN",
    required=True,
    help="Expected Bearer token (sync API).",
)
@click.option("--channel-id", default=1, show_default=True, type=int)
@click.option(
    "--throttle/--no-throttle",
    default=True,
    show_default=True,
    help="Jetti's sync limits: 1 write/s and 2 reads/s per token.",
)
@click.option(
    "--async-rate",
    type=int,
    default=None,
    help="Requests/s allowed on the async endpoint (default: unlimited).",
)
@click.option(
    "--throttle-retry-after-s",
    type=float,
    default=None,
    help="Send Retry-After with throttle 429s (Jetti documents none).",
)
@click.option(
    "--validation-status",
    type=click.IntRange(400, 499),
    default=422,
    show_default=True,
    help="Status of a sync validation error.",
)
@click.option(
    "--variants",
    "variants_file",
    type=click.Path(exists=True, path_type=Path),
    help="JSON list of known variants; without it every variant is known.",
)
@click.option("--latency-ms", type=float, default=0.0, help="Added to every Jetti response.")
@click.option("--latency-jitter-ms", type=float, default=0.0, help="Plus uniform(0, this).")
@click.option(
    "--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Probability of a 500/502/503."
)
@click.option(
    "--rate-429",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Probability of a 429 with Retry-After.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Probability of a connection dropped mid-response.",
)
@click.option(
    "--slow-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Probability of an answer after --slow-s.",
)
@click.option("--slow-s", type=float, default=30.0, show_default=True)
@click.option("--out-of-order", is_flag=True, help="Apply async imports newest-first per batch.")
@click.option("--seed", type=int, default=None, help="Seed for fault randomness.")
def sandbox(
    host: str,
    port: int,
    webhook_hash: str,
    api_token: str,
    channel_id: int,
    throttle: bool,
    async_rate: int | None,
    throttle_retry_after_s: float | None,
    validation_status: int,
    variants_file: Path | None,
    latency_ms: float,
    latency_jitter_ms: float,
    error_rate: float,
    rate_429: float,
    drop_rate: float,
    slow_rate: float,
    slow_s: float,
    out_of_order: bool,
    seed: int | None,
) -> None:
    """Run a local Jetti (both import endpoints, reads, cancel) with fault injection."""
    require_extra("sandbox", *SANDBOX_MODULES)
    import uvicorn

    from ops.sandbox.app import Config, SandboxApp

    faults = Faults(
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        error_rate=error_rate,
        rate_429=rate_429,
        drop_rate=drop_rate,
        slow_rate=slow_rate,
        slow_s=slow_s,
        out_of_order=out_of_order,
        seed=seed,
    )
    config = Config(
        webhook_hash=webhook_hash,
        api_token=api_token,
        channel_id=channel_id,
        throttle=throttle,
        async_rate_per_s=async_rate,
        throttle_retry_after_s=throttle_retry_after_s,
        validation_status=validation_status,
        variants=load_variants(variants_file) if variants_file else None,
        faults=faults,
    )
    base = f"http://{host}:{port}"
    for line in relay_variables(host, port, channel_id):
        click.echo(line)
    click.echo(
        "also set JETTI_RELAY_WEBHOOK_HASH and JETTI_RELAY_API_TOKEN to the "
        "--webhook-hash and --api-token values",
        err=True,
    )
    click.echo(f"sandbox stats: {base}/_sandbox/stats", err=True)
    uvicorn.run(
        SandboxApp(config),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
