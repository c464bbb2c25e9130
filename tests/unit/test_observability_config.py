"""The monitoring files are checked statically (no Docker here): every Prometheus scrape target is
a compose service and port that serves /metrics, and every metric a dashboard panel or an alert
queries is one our code defines (runtime.metrics)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from command_api.settings import CommandApiSettings
from query_api.settings import QueryApiSettings
from runtime import metrics
from runtime.settings import HealthSettings

ROOT = Path(__file__).parents[2]
OPS = ROOT / "ops"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
ALERTS = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
DASHBOARD = json.loads((OPS / "grafana" / "dashboards" / "todo.json").read_text())

# Which port serves /metrics in each compose service (their settings' defaults: compose sets none).
health = HealthSettings()
METRICS_PORTS = {
    "command-api": CommandApiSettings().COMMAND_API_PORT,
    "query-api": QueryApiSettings().QUERY_API_PORT,
    "relay": health.RELAY_HEALTH_PORT,
    "projector": health.PROJECTOR_HEALTH_PORT,
    "scheduler": health.SCHEDULER_HEALTH_PORT,
    "mailer": health.MAILER_HEALTH_PORT,
}
# Series Prometheus itself makes, not our code.
PROMETHEUS_OWN = {"up"}
# PromQL words that look like metric names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "deriv", "delta",
    "histogram_quantile", "by", "without", "on", "ignoring", "and", "or", "unless", "time",
    "absent", "changes", "le", "bool", "group_left", "group_right", "offset", "topk",
}  # fmt: skip


def targets() -> list[tuple[str, str, int]]:
    found = []
    for job in PROMETHEUS["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                found.append((job["job_name"], host, int(port)))
    return found


def metric_names_in(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\bby\s*\([^)]*\)|\bon\s*\([^)]*\)|\bwithout\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+|e\d*", w)}


def dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in ALERTS["groups"] for rule in group["rules"]]


def test_every_process_of_ours_is_scraped_and_every_target_is_a_compose_service_port() -> None:
    services = COMPOSE["services"]
    scraped = {host for _, host, _ in targets()}
    assert scraped == set(METRICS_PORTS), "each process serving /metrics is scraped, once"
    for job, host, port in targets():
        assert host in services, f"{job}: {host} is not a compose service"
        assert port == METRICS_PORTS[host], f"{job}: {host} serves on {METRICS_PORTS[host]}"


def test_the_workers_health_ports_listen_beyond_loopback_in_compose() -> None:
    env = COMPOSE["x-app"]["environment"]
    assert env["HEALTH_HOST"] == "0.0.0.0"
    for name in ("command-api", "query-api"):
        host_key = "COMMAND_API_HOST" if name == "command-api" else "QUERY_API_HOST"
        assert COMPOSE["services"][name]["environment"][host_key] == "0.0.0.0"


def test_prometheus_and_grafana_mount_the_files_that_exist() -> None:
    for name in ("prometheus", "grafana"):
        for volume in COMPOSE["services"][name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    rule_files = PROMETHEUS["rule_files"]
    mounted = {v.split(":")[1] for v in COMPOSE["services"]["prometheus"]["volumes"]}
    assert set(rule_files) <= mounted


def test_every_metric_a_dashboard_panel_queries_is_defined_by_our_code() -> None:
    defined = metrics.metric_names()
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        unknown = metric_names_in(expr) - defined
        assert not unknown, f"panel queries unknown metrics {unknown}: {expr}"


def test_every_metric_an_alert_queries_is_defined_by_our_code() -> None:
    defined = metrics.metric_names() | PROMETHEUS_OWN
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert rule["alert"] and rule["annotations"]["summary"]
        unknown = metric_names_in(rule["expr"]) - defined
        assert not unknown, f"alert {rule['alert']} queries unknown metrics {unknown}"


def test_the_name_check_would_catch_a_typo() -> None:
    assert metric_names_in('sum(rate(http_requests_totl{job="x"}[5m]))') - (
        metrics.metric_names()
    ) == {"http_requests_totl"}


def test_the_dashboard_covers_lag_per_hop_commands_dead_letters_and_emails() -> None:
    queried = set().union(*(metric_names_in(e) for e in dashboard_exprs()))
    for needed in (
        "relay_lag_seconds",
        "consumer_lag_seconds",
        "consumer_lag_events",
        "http_request_duration_seconds_bucket",
        "dead_letters_total",
        "emails_sent_total",
        "emails_failed_total",
    ):
        assert needed in queried


def test_the_grafana_datasource_points_at_the_compose_prometheus() -> None:
    path = OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(path.read_text())["datasources"]
    uids = {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in COMPOSE["services"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules_and_the_config() -> None:
    rules = subprocess.run(
        ["promtool", "check", "rules", str(OPS / "prometheus" / "alerts.yml")], check=False
    )
    assert rules.returncode == 0
