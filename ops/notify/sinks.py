"""Where alert messages go: a generic JSON webhook and a Slack incoming webhook.

Both POST JSON with httpx under short timeouts. A sink accepts a message only with a 2xx;
anything else (a status, a timeout, a refused connection) raises SendFailed, and the notifier
sends the message again on its next pass. The URLs are secrets (a Slack webhook URL is its own
credential): no error, log line or output of this module names them; SendFailed carries only
the sink's name and what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx

# Connect and read waits of one send; a pass sends few messages, and the lease outlasts them.
SEND_TIMEOUT_S = 5.0

MessageStatus = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Message:
    """One alert message. `since`: when the firing began (epoch s); `deployment`: the key
    prefix, so several deployments can share a channel; `repeat`: a reminder of a firing
    already sent."""

    alert: str
    status: MessageStatus
    severity: str
    summary: str
    value: float | None
    threshold: float | None
    since: float | None
    deployment: str
    repeat: bool = False

    def webhook_body(self) -> dict[str, Any]:
        """The generic webhook's JSON (docs/alerts.md)."""
        return {
            "alert": self.alert,
            "status": self.status,
            "severity": self.severity,
            "summary": self.summary,
            "value": self.value,
            "threshold": self.threshold,
            "since": self.since,
            "deployment": self.deployment,
        }

    def slack_body(self) -> dict[str, Any]:
        """A Slack incoming-webhook message: `text` (notifications, plain clients) and blocks."""
        word = "RESOLVED" if self.status == "resolved" else "FIRING"
        if self.repeat:
            word = "STILL FIRING"
        icon = ":white_check_mark:" if self.status == "resolved" else ":rotating_light:"
        head = f"{icon} [{word}] {self.alert} ({self.severity}) on {self.deployment}"
        since = (
            "-"
            if self.since is None
            else datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        )
        facts = f"value {_figure(self.value)}, threshold {_figure(self.threshold)}, since {since}"
        return {
            "text": f"{head}: {self.summary}",
            "blocks": [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{head}*\n{self.summary}"},
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
            ],
        }


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


class SendFailed(Exception):
    """A sink did not accept a message (no 2xx). `detail` never holds the URL."""

    def __init__(self, sink: str, detail: str) -> None:
        super().__init__(f"{sink}: {detail}")
        self.sink = sink
        self.detail = detail


class Sink(Protocol):
    """Somewhere alert messages are delivered."""

    @property
    def name(self) -> str: ...

    def send(self, message: Message) -> None:
        """Deliver `message`; raise SendFailed unless the receiver answered 2xx."""


class HttpSink:
    """POST the body `render(message)` to `url` with `client` (the caller owns the client)."""

    def __init__(
        self,
        name: str,
        url: str,
        render: Callable[[Message], dict[str, Any]],
        client: httpx.Client,
    ) -> None:
        self._name = name
        self._url = url
        self._render = render
        self._client = client

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:  # never the URL
        return f"HttpSink({self._name!r})"

    def send(self, message: Message) -> None:
        try:
            response = self._client.post(self._url, json=self._render(message))
        except httpx.HTTPError as exc:
            # The class only: httpx's messages can quote the URL.
            raise SendFailed(self._name, type(exc).__name__) from None
        if not 200 <= response.status_code < 300:
            raise SendFailed(self._name, f"HTTP {response.status_code}")


def http_client() -> httpx.Client:
    """The sinks' client: SEND_TIMEOUT_S for every phase, no redirects (a webhook that moves
    is a configuration to fix, not to follow with the alert's body)."""
    return httpx.Client(timeout=httpx.Timeout(SEND_TIMEOUT_S), follow_redirects=False)


def webhook_sink(url: str, client: httpx.Client) -> Sink:
    """The generic JSON webhook (`Message.webhook_body`)."""
    return HttpSink("webhook", url, Message.webhook_body, client)


def slack_sink(url: str, client: httpx.Client) -> Sink:
    """A Slack incoming webhook (`Message.slack_body`)."""
    return HttpSink("slack", url, Message.slack_body, client)
