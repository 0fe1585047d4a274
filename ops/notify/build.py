"""Settings -> the notifier (the ops side's composition of ops/notify, as worker/runtime.py is
the worker's): the monitoring sources, the rules and their thresholds, the sinks, the lease."""

from __future__ import annotations

from collections.abc import Callable

from ops.monitoring.sources import Sources
from ops.notify.notifier import Notifier, NotifierConfig
from ops.notify.rules import Ping, Reading, RuleConfig, all_rules, read_all
from ops.notify.sinks import Sink, http_client, slack_sink, webhook_sink
from worker.settings import Settings
from worker.store.leases import Leader

# How long the no_live_worker rule waits for workers to answer the broker ping.
PING_TIMEOUT_S = 2.0


def rule_config(settings: Settings) -> RuleConfig:
    """The rules' thresholds from the alert_* settings."""
    return RuleConfig(
        dead_letters_per_hour=settings.alert_dead_letters_per_hour,
        oldest_pending_s=settings.alert_oldest_pending_s,
        reconciler_lag_s=settings.alert_reconciler_lag_s,
        reconciler_on=settings.reconcile_active,
        ping_timeout_s=PING_TIMEOUT_S,
    )


def sinks(settings: Settings) -> list[Sink]:
    """The configured sinks (none when neither URL is set)."""
    webhook = settings.notify_webhook_url.get_secret_value()
    slack = settings.notify_slack_url.get_secret_value()
    if not (webhook or slack):
        return []
    client = http_client()
    found: list[Sink] = []
    if webhook:
        found.append(webhook_sink(webhook, client))
    if slack:
        found.append(slack_sink(slack, client))
    return found


def build_notifier(
    settings: Settings, *, holder: str | None = None, ping: Ping | None = None
) -> Notifier:
    """The notifier of the deployment `settings` describe. `ping` asks the Celery workers
    (default: the broker ping of `jetti-relay health`); `holder` names this process in the
    lease (default: host:pid)."""
    from ops.commands.health import celery_ping
    from worker.runtime import worker_id

    src = Sources.from_settings(settings)
    cfg = rule_config(settings)
    rules = all_rules(ping or celery_ping(settings))

    def read(now: float) -> list[Reading]:
        return read_all(src, cfg, rules, now)

    reader: Callable[[float], list[Reading]] = read
    return Notifier(
        client=src.client,
        keys=src.keys,
        leader=Leader(src.client, src.keys),
        read=reader,
        sinks=sinks(settings),
        config=NotifierConfig(
            holder=holder or worker_id(),
            interval_s=settings.notify_interval_s,
            repeat_s=settings.alert_repeat_s,
            deployment=settings.key_prefix,
        ),
    )
