"""Measure producer throughput: orders/s through `producers.enqueue` into a real Redis.

Run against a throwaway Redis (it writes ledger entries and import messages there):

    redis-server --port 6399 --save "" --daemonize yes
    ./run jetti-relay bench enqueue --redis-url redis://127.0.0.1:6399/0 --orders 20000
    redis-cli -p 6399 shutdown nosave

Orders are realistic 3-line raw orders given as JSON bytes (what the CLI hands over for JSON
Lines), each with a unique key per run, so every one is ACCEPTED and published.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import click
import redis

from producers.enqueue import DEFAULT_CHUNK_SIZE, enqueue
from worker.core.contract import parse_raw_order
from worker.core.jsonio import loads_document
from worker.core.keys import Keys
from worker.publisher import DEFAULT_BATCH_SIZE
from worker.settings import Settings
from worker.store.ledger import Ledger, NewVersion
from worker.wiring import publisher as build_publisher


def make_order(number: int, lines: int) -> bytes:
    """One realistic raw order: customer, addresses, shipping and `lines` priced lines."""
    address = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "line1": "12 Analytical Street",
        "city": "London",
        "zip": "N1 9GU",
        "country": "GB",
    }
    order: dict[str, Any] = {
        "id": f"{number}",
        "number": f"#{100000 + number}",
        "updated_at": "2026-11-27T12:00:00Z",
        "placed_at": "2026-11-27T11:58:00Z",
        "currency": "GBP",
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        "billing_address": address,
        "shipping_address": address,
        "shipping": {"code": "std", "name": "Standard", "price": "4.95"},
        "lines": [
            {
                "id": f"{number}-{i}",
                "sku": f"SKU-{i:04d}",
                "name": f"Product {i}",
                "quantity": 1 + i % 3,
                "unit_price": f"{9 + i}.99",
                "properties": {"colour": "blue"},
            }
            for i in range(lines)
        ],
    }
    return json.dumps(order).encode()


@click.command("enqueue")
@click.option("--redis-url", default="redis://127.0.0.1:6399/0", show_default=True)
@click.option("--orders", "count", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--lines", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=DEFAULT_CHUNK_SIZE, show_default=True
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True
)
def enqueue_bench(redis_url: str, count: int, lines: int, chunk_size: int, batch_size: int) -> None:
    """Enqueue COUNT orders and print orders/s (and the validation-only rate for comparison)."""
    bodies = [make_order(i, lines) for i in range(count)]

    started = time.perf_counter()
    for body in bodies:
        parse_raw_order(loads_document(body))
    validate_s = time.perf_counter() - started

    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    publisher = build_publisher(Settings(redis_url=redis_url), batch_size=batch_size)
    started = time.perf_counter()
    summary = enqueue(
        bodies,
        client=client,
        publisher=publisher,
        id_prefix=f"bench-{uuid.uuid4().hex[:8]}-",
        keys=Keys("bench"),
        chunk_size=chunk_size,
    )
    elapsed_s = time.perf_counter() - started
    client.close()

    # The stages on their own, to show which one bounds the total.
    client = redis.Redis.from_url(redis_url)
    ledger = Ledger(client, Keys("bench"))
    run = uuid.uuid4().hex[:8]
    items = [NewVersion(f"stage-{run}-{i}", body, None, None) for i, body in enumerate(bodies)]
    started = time.perf_counter()
    for start in range(0, count, chunk_size):
        ledger.record_many(items[start : start + chunk_size], now=time.time())
    ledger_s = time.perf_counter() - started
    started = time.perf_counter()
    messages = publisher.publish([item.order_key for item in items])
    publish_s = time.perf_counter() - started
    client.close()

    click.echo(summary.line() + f", messages {summary.messages}")
    click.echo(f"validation only: {count / validate_s:,.0f} orders/s")
    click.echo(f"ledger record_many only: {count / ledger_s:,.0f} orders/s")
    click.echo(
        f"publish only: {count / publish_s:,.0f} keys/s "
        f"({publish_s / messages * 1000:.2f} ms per message of {batch_size} keys)"
    )
    click.echo(f"enqueue: {count} orders in {elapsed_s:.2f} s = {count / elapsed_s:,.0f} orders/s")
