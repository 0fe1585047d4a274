"""Sentinel addresses (`JETTI_RELAY_REDIS_SENTINELS`) and the broker URL derived from them.

With sentinels configured, `JETTI_RELAY_REDIS_URL` no longer says where Redis is: the sentinels
do. It still gives the database number and the data nodes' user and password, for the ledger
and for the Celery broker, which then connects through kombu's `sentinel://` transport.
"""

from __future__ import annotations

from urllib.parse import urlsplit

Address = tuple[str, int]


def parse_sentinels(text: str) -> list[Address]:
    """`"a:26379, b:26380"` -> [("a", 26379), ("b", 26380)]; "" -> []. ValueError names the
    entry that is not `host:port` with a port from 1 to 65535 (IPv6 as `[::1]:26379`)."""
    addresses: list[Address] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port (a list like host1:26379,host2:26379)")
        addresses.append((host, int(port)))
    if text.strip() and not addresses:
        raise ValueError("no sentinel address in it (a list like host1:26379,host2:26379)")
    return addresses


def url_parts(redis_url: str) -> tuple[str, int]:
    """(userinfo with its trailing `@` or "", database number) of a redis:// URL."""
    parts = urlsplit(redis_url)
    userinfo = parts.netloc.rpartition("@")[0]
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else 0
    return (f"{userinfo}@" if userinfo else ""), db


def sentinel_broker_url(sentinels: list[Address], redis_url: str) -> str:
    """Kombu's URL for a Redis broker behind `sentinels`: one `sentinel://` URL per sentinel,
    `;`-separated, each with the data nodes' credentials and database from `redis_url` (kombu
    takes the master name and the sentinels' own password from transport options)."""
    userinfo, db = url_parts(redis_url)
    hosts = (f"[{h}]" if ":" in h else h for h, _ in sentinels)
    return ";".join(
        f"sentinel://{userinfo}{host}:{port}/{db}"
        for host, (_, port) in zip(hosts, sentinels, strict=True)
    )
