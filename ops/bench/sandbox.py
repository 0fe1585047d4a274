"""Measure the sandbox's async-endpoint throughput with a typical 10-line order.

    jetti-relay bench sandbox --url http://127.0.0.1:8080 --hash H --connections 32 --seconds 10

The client is a bare asyncio HTTP/1.1 client with N concurrent keep-alive connections (each
builds and serialises its order per request, as the worker would); on 2 cores the Python client
shares the CPU with the server, so `--wrk-script FILE` writes a
Lua script for `wrk` (Debian package `wrk`) that sends the same request.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click
import httpx

WEBHOOK_PATH = "/webhooks/custom-channels/manual-sale.json"


def ten_line_order(external_id: str = "bench-1") -> dict[str, Any]:
    """A typical order: 10 lines with properties, addresses, customer and one shipping line."""
    return {
        "externalId": external_id,
        "saleDefaults": {
            "reference": "#10001",
            "shippingFirstName": "Ada",
            "shippingLastName": "Lovelace",
            "shippingAddressLineOne": "1 Via Roma",
            "shippingCity": "Milano",
            "shippingZip": "20100",
            "shippingCountry": "IT",
        },
        "customer": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
        "lineItems": [
            {
                "externalId": f"{external_id}-L{i}",
                "name": f"Product {i}",
                "quantity": 1 + i % 3,
                "price": 19.99,
                "taxable": True,
                "variant": {"externalId": f"V{i}", "sku": f"SKU-{i}"},
                "properties": [{"key": "gift_note", "value": "Happy birthday"}],
            }
            for i in range(10)
        ],
        "shipping": [{"code": "std", "name": "Standard", "serviceLevel": "ground", "price": 4.9}],
        "options": {"findOrCreateChannelVariant": True},
    }


async def _run(url: str, webhook_hash: str, connections: int, seconds: float) -> tuple[int, int]:
    # A bare asyncio HTTP/1.1 keep-alive client: httpx.AsyncClient's pool tops out near
    # 120 req/s with 32 concurrent requests here, which would measure the client, not the server.
    target = httpx.URL(url)
    host, port = target.host, target.port or 80
    ok = failed = 0
    stop_at = time.monotonic() + seconds

    async def one_connection(worker: int) -> None:
        nonlocal ok, failed
        reader, writer = await asyncio.open_connection(host, port)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            body = json.dumps(ten_line_order(f"bench-{worker}-{n % 500}")).encode()
            writer.write(
                f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\njetti-webhook-hash: {webhook_hash}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                failed += 1
        writer.close()

    await asyncio.gather(*(one_connection(i) for i in range(connections)))
    return ok, failed


@click.command("sandbox")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True)
@click.option("--hash", "webhook_hash", envvar="SANDBOX_WEBHOOK_HASH", required=True)
@click.option("--connections", default=32, show_default=True)
@click.option("--seconds", default=10.0, show_default=True)
@click.option(
    "--wrk-script",
    type=click.Path(path_type=Path),
    help="Write a wrk Lua script for the same request instead of running.",
)
def sandbox_bench(
    url: str, webhook_hash: str, connections: int, seconds: float, wrk_script: Path | None
) -> None:
    """Print requests/s for the async endpoint (faults should be off)."""
    if wrk_script is not None:
        body = json.dumps(ten_line_order())
        wrk_script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["jetti-webhook-hash"] = {json.dumps(webhook_hash)}\n'
        )
        click.echo(f"wrk -t2 -c{connections} -d{int(seconds)}s -s {wrk_script} {url}{WEBHOOK_PATH}")
        return
    ok, failed = asyncio.run(_run(url, webhook_hash, connections, seconds))
    click.echo(
        f"{ok / seconds:.0f} req/s ok ({ok} ok, {failed} failed, {connections} connections, "
        f"{seconds:.0f} s, client asyncio HTTP/1.1)"
    )
