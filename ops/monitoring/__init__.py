"""Prometheus metrics and the monitoring configuration (alerts, Prometheus, Grafana)."""
