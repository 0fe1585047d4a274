"""The Jetti sandbox as the harness sees it: where a started one listens (`SandboxService`) and
a typed client for its `/_sandbox/` inspection routes (`SandboxRoutes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

ASYNC_PATH = "/webhooks/custom-channels/manual-sale.json"


@dataclass(frozen=True)
class SandboxService:
    """A sandbox started by `Services.start_sandbox`: where it listens and its secrets."""

    base_url: str
    webhook_hash: str
    api_token: str
    channel_id: int
    pid: int

    @property
    def webhook_url(self) -> str:
        return self.base_url + ASYNC_PATH


class SandboxRoutes:
    """The sandbox's `/_sandbox/` inspection routes, over the subclass's `client` (an httpx
    client whose base URL is the sandbox). Each route first waits until every async import
    received so far is applied."""

    @property
    def client(self) -> httpx.Client:
        raise NotImplementedError

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget every sale, import, counter and fault (back to how the server started)."""
        self._json(self.client.post("/_sandbox/reset"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change fault knobs (see ops/sandbox/faults.py `Faults`); returns all knobs."""
        result: dict[str, Any] = self._json(self.client.post("/_sandbox/faults", json=faults))
        return result

    def stats(self) -> dict[str, Any]:
        """Requests by endpoint and status, sales, versions received, duplicates, imports."""
        result: dict[str, Any] = self._json(self.client.get("/_sandbox/stats"))
        return result

    def add_foreign_sale(self, external_id: str, channel_id: int) -> list[dict[str, Any]]:
        """Give another channel a sale with this externalId; returns that channel-set's sales."""
        result: list[dict[str, Any]] = self._json(
            self.client.post(
                "/_sandbox/foreign-sales", json={"externalId": external_id, "channelId": channel_id}
            )
        )
        return result

    def foreign_sales(self, external_id: str) -> list[dict[str, Any]]:
        """Other channels' sales with this externalId (as cancelled or not by the relay)."""
        result: list[dict[str, Any]] = self._json(
            self.client.get("/_sandbox/foreign-sales", params={"externalId": external_id})
        )
        return result

    def history(self, external_id: str) -> list[dict[str, Any]]:
        """Every version received for that order, in arrival order (body, hash, duplicate)."""
        result: list[dict[str, Any]] = self._json(
            self.client.get("/_sandbox/history", params={"externalId": external_id})
        )
        return result
