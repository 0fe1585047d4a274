"""The shipped alert rules and Grafana dashboard only use what the exporter really exports.

Both files are parsed; every metric, label matcher and grouping label in their PromQL is looked
up in a real exporter's output over a real Redis holding one of everything (`seed_fleet`). A
renamed metric or a typo'd label fails here instead of silently never firing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.exporter import running_exporter, scrape, seed_fleet

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "ops" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
PROMETHEUS = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "jetti-relay.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


@pytest.fixture(scope="module")
def exported(redis_server: Any) -> Samples:
    """One scrape of a real exporter over seeded data."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    seed_fleet(redis_server.url)
    with running_exporter(redis_server.url) as url:
        return scrape(url)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[Query]:
    doc = json.loads(DASHBOARD.read_text())
    return [
        Query(f"panel {p['title']!r} target {t['refId']}", t["expr"])
        for p in doc["panels"]
        for t in p["targets"]
    ]


def all_queries() -> list[Query]:
    return [Query(f"alert {r['alert']}", r["expr"]) for r in alert_rules()] + dashboard_queries()


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bjetti_relay_[a-zA-Z0-9_:]*", _STRING.sub('""', expr)))


def series_of(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for labels in samples.get(name, {})]


def problems_in(query: Query, samples: Samples, jobs: set[str]) -> list[str]:
    """Everything in `query` the exporter does not back, as readable messages."""
    found: list[str] = []
    names = metric_names(query.expr)
    for name in sorted(names):
        if name not in samples:
            found.append(f"{query.where}: metric {name} is not exported")
    for name, body in _SELECTOR.findall(query.expr):
        for label, op, wanted in _MATCHER.findall(body):
            if name == "up" and label == "job":
                if wanted not in jobs:
                    found.append(f"{query.where}: job {wanted!r} is not in prometheus.yml")
                continue
            values = {s.get(label) for s in series_of(samples, name)}
            if op == "=" and wanted not in values:
                found.append(f"{query.where}: {name} has no {label}={wanted!r}; has {values}")
            if op == "=~":
                alternatives = wanted.split("|")
                missing = [a for a in alternatives if a not in values]
                if missing:
                    found.append(f"{query.where}: {name} has no {label} in {missing}")
    labels = {label for name in names for s in series_of(samples, name) for label in s}
    for group in _GROUPING.findall(query.expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in labels:
                found.append(f"{query.where}: grouping label {label!r} is on no metric used")
    return found


def scrape_jobs() -> set[str]:
    doc = yaml.safe_load(PROMETHEUS.read_text())
    return {job["job_name"] for job in doc["scrape_configs"]}


def test_every_alert_and_panel_query_uses_exported_metrics(exported: Samples) -> None:
    """Every metric, label value and grouping label the rules and dashboard use is exported."""
    problems = [p for q in all_queries() for p in problems_in(q, exported, scrape_jobs())]
    assert problems == []


def test_the_checker_catches_a_wrong_metric_or_label(exported: Samples) -> None:
    """The check above can fail: a typo'd metric, label value and grouping label are reported."""
    bad = Query("test", 'sum by (colour) (jetti_relay_orders{state="lost"}) + jetti_relay_nope')
    problems = problems_in(bad, exported, scrape_jobs())
    assert len(problems) == 3, problems


def test_alert_rules_are_well_formed() -> None:
    """Unique names, a severity, a summary, valid `for` durations, and every issue alert there:
    dead letters growing, oldest waiting order too old, breaker open, no progress; the stream
    intake not reading, lagging, holding an old pending entry, rejecting, near its rejects cap;
    Redis replicas below the minimum or lagging, sentinels below quorum, a recent failover."""
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert "for" not in rule or _DURATION.match(rule["for"]), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert metric_names(rule["expr"]) or "up{" in rule["expr"], rule["alert"]
    assert {
        "JettiRelayDeadLettersGrowing",
        "JettiRelayOldestWaitingOrderTooOld",
        "JettiRelayBreakerOpen",
        "JettiRelayNoProgress",
        "JettiRelayIntakeNotReading",
        "JettiRelayIntakeLagHigh",
        "JettiRelayIntakeOldestPendingOld",
        "JettiRelayIntakeRejectsGrowing",
        "JettiRelayIntakeRejectsNearCap",
        "JettiRelayRedisReplicasBelowMinimum",
        "JettiRelayRedisReplicaLagging",
        "JettiRelaySentinelsBelowQuorum",
        "JettiRelayRedisFailedOver",
    } <= set(names)


def test_prometheus_loads_the_rules_file_compose_mounts() -> None:
    """prometheus.yml names the rules file at the path docker-compose.yml mounts it to."""
    doc = yaml.safe_load(PROMETHEUS.read_text())
    assert doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "jetti-relay" in scrape_jobs()


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    """Every panel and target points at the datasource uid Grafana is provisioned with."""
    uids = {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["panels"]
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert all(t["datasource"]["uid"] in uids for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
