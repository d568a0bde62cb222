"""The dashboard and the alerts: valid PromQL, only metrics the service exports, alerts that fire."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from tests.conftest import Tokens, base_settings, serve
from tests.deploy.chart import CHART, NAMESPACE, PROMTOOL, RELEASE, Rendered, require_tool
from tests.factories import access_event

DASHBOARD = CHART / "dashboards" / "seenby.json"
REQUIRED_ALERTS = {
    "SeenbyIntegrationLagHigh", "SeenbyEntriesWaitingGrowing", "SeenbyHighErrorRatio",
    "SeenbyDeletionRequestsOverdue", "SeenbyCheckpointStalled", "SeenbyWitnessConflict",
    "SeenbyWitnessQuorumMissed",
}
# Grafana's variables, given values so that the queries parse as PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": NAMESPACE, "$job": RELEASE}


@pytest.fixture(scope="module")
def metrics_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("metrics")
    settings = base_settings(data_dir, database_url=f"sqlite+aiosqlite:///{data_dir}/seenby.db")
    upgrade(settings)
    return settings


@pytest.fixture(scope="module")
async def exported_series(metrics_settings: Settings) -> AsyncIterator[set[str]]:
    """Every sample name /metrics serves, once an access has been recorded and integrated (and the
    counters it declares that no label has been counted under yet, such as witness conflicts)."""
    app = create_app(metrics_settings)
    async for client in serve(app):
        tokens = Tokens(app)
        response = await client.post("/v1/accesses", json=access_event("cust-metrics"),
                                      headers=tokens.service())
        assert response.status_code == 201
        await app.state.integrator.integrate_once()
        text = (await client.get("/metrics")).text
        names = set()
        for family in text_string_to_metric_families(text):
            names |= {sample.name for sample in family.samples}
            if family.type == "counter" and not family.samples:  # labelled, none counted yet
                names.add(f"{family.name}_total")
        yield names


def metric_names(expression: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expression), visit)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    queries = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for name, value in GRAFANA_VARIABLES.items():
        queries = [query.replace(name, value) for query in queries]
    return queries


def alert_rules(rendered: Rendered) -> list[dict[str, Any]]:
    rule = rendered.one("PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_dashboard_is_the_json_the_configmap_ships(default_render: Rendered) -> None:
    board = dashboard()
    shipped = json.loads(default_render.one("ConfigMap", f"{RELEASE}-dashboard")["data"]["seenby.json"])
    assert shipped == board
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_shows_what_operators_need() -> None:
    queries = dashboard_queries(dashboard())
    joined = "\n".join(queries)
    assert "rate(seenby_entries_recorded_total" in joined, "ingest rate"
    assert re.search(r"histogram_quantile\(0\.99, sum by \(le, route\) \(rate\("
                     r"seenby_http_request_duration_seconds_bucket", joined), "latency by route"
    assert "seenby_log_integration_lag_seconds_bucket" in joined, "integration lag"
    assert "seenby_log_tree_size" in joined, "tree size"
    assert "max by (status) (seenby_deletion_requests{" in joined, "deletion requests by status"
    assert "seenby_deletion_requests_overdue" in joined, "overdue deletion requests"


def test_dashboard_queries_use_only_exported_metrics(exported_series: set[str]) -> None:
    board = dashboard()
    queries = dashboard_queries(board)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries += re.findall(r"label_values\((\w+)", variable["definition"])
    for query in queries:
        names = metric_names(query)
        assert names, f"no metric in {query!r}"
        assert names <= exported_series, f"{sorted(names - exported_series)} in {query!r}"


def test_alert_rules_cover_the_log_the_api_and_deletions(production_render: Rendered) -> None:
    rules = alert_rules(production_render)
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert f'job="{RELEASE}",namespace="{NAMESPACE}"' in rule["expr"], "scoped to the release"


def test_alert_expressions_use_only_exported_metrics(
    production_render: Rendered, exported_series: set[str]
) -> None:
    for rule in alert_rules(production_render):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported_series, f"{rule['alert']}: {sorted(names - exported_series)}"


def test_integration_lag_alert_uses_the_histogram_quantile(production_render: Rendered) -> None:
    (lag,) = [r for r in alert_rules(production_render) if r["alert"] == "SeenbyIntegrationLagHigh"]
    assert "histogram_quantile(" in lag["expr"] and lag["expr"].strip().endswith("> 5")


# --- promtool: Prometheus's own rule checker and rule unit tests --------------------------------

SELECTOR = f'job="{RELEASE}",namespace="{NAMESPACE}"'


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f',{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{SELECTOR},instance=\"pod-a\"{extra}}}", "values": values}


def lag_buckets(bucket_with_everything: str) -> list[dict[str, str]]:
    """60 observations a minute, all of them at or below `bucket_with_everything` seconds."""
    bounds = ["0.1", "1.0", "5.0", "10.0", "+Inf"]
    return [series("seenby_log_integration_lag_seconds_bucket",
                   "0+60x30" if float(bound) >= float(bucket_with_everything) else "0x30", le=bound)
            for bound in bounds]


FIRES = [{"severity": "critical"}]
WARNS = [{"severity": "warning"}]
ALERT_CASES: list[tuple[str, list[dict[str, str]], str, list[dict[str, str]]]] = [
    # (alert, input series, evaluated at, expected alerts' labels)
    ("SeenbyIntegrationLagHigh", lag_buckets("10.0"), "20m", WARNS),
    ("SeenbyIntegrationLagHigh", lag_buckets("0.1"), "20m", []),
    ("SeenbyEntriesWaitingGrowing", [series("seenby_log_entries_waiting", "1000+100x40")], "30m", WARNS),
    ("SeenbyEntriesWaitingGrowing", [series("seenby_log_entries_waiting", "5000x40")], "30m", []),
    ("SeenbyEntriesWaitingGrowing", [series("seenby_log_entries_waiting", "0+10x40")], "30m", []),
    ("SeenbyHighErrorRatio", [series("seenby_http_requests_total", "0+90x30", status="201"),
                              series("seenby_http_requests_total", "0+10x30", status="500")], "20m", FIRES),
    ("SeenbyHighErrorRatio", [series("seenby_http_requests_total", "0+990x30", status="201"),
                              series("seenby_http_requests_total", "0+10x30", status="503")], "20m", []),
    ("SeenbyDeletionRequestsOverdue", [series("seenby_deletion_requests_overdue", "0x5 1x40")], "30m", FIRES),
    ("SeenbyDeletionRequestsOverdue", [series("seenby_deletion_requests_overdue", "0x40")], "30m", []),
    ("SeenbyCheckpointStalled", [series("seenby_entries_recorded_total", "0+50x40", kind="access"),
                                 series("seenby_log_checkpoints_signed_total", "7x40")], "30m", FIRES),
    ("SeenbyCheckpointStalled", [series("seenby_entries_recorded_total", "0+50x40", kind="access"),
                                 series("seenby_log_checkpoints_signed_total", "0+5x40")], "30m", []),
    ("SeenbyCheckpointStalled", [series("seenby_entries_recorded_total", "9x40", kind="access"),
                                 series("seenby_log_checkpoints_signed_total", "7x40")], "30m", []),
    ("SeenbyMetricsAbsent", [], "30m", [{"severity": "warning", "job": RELEASE, "namespace": NAMESPACE}]),
    ("SeenbyMetricsAbsent", [series("seenby_log_tree_size", "3x40")], "30m", []),
    ("SeenbyWitnessConflict", [series("seenby_witness_conflicts_total", "0x10 1x30", witness="W1")], "15m",
     [{"severity": "critical", "witness": "W1"}]),
    ("SeenbyWitnessConflict", [series("seenby_witness_conflicts_total", "0x40", witness="W1")], "15m", []),
    ("SeenbyWitnessQuorumMissed", [series("seenby_witnessed_checkpoint_age_seconds", "0.4x5 60+60x30")],
     "20m", FIRES),
    ("SeenbyWitnessQuorumMissed", [series("seenby_witnessed_checkpoint_age_seconds", "0.4x40")], "20m", []),
    ("SeenbyNoticeBacklogOld", [series("seenby_notice_oldest_pending_age_seconds", "0x5 0+60x30")], "30m",
     WARNS),
    ("SeenbyNoticeBacklogOld", [series("seenby_notice_oldest_pending_age_seconds", "0 30 0 12 0x30")], "30m",
     []),
    ("SeenbyNoticeDeadLetters", [series("seenby_notices_dead_letters", "0x10 3x30")], "20m", FIRES),
    ("SeenbyNoticeDeadLetters", [series("seenby_notices_dead_letters", "0x40")], "20m", []),
]


def write_rules(rendered: Rendered, folder: Path, *, with_annotations: bool) -> Path:
    groups = rendered.one("PrometheusRule")["spec"]["groups"]
    if not with_annotations:  # the unit tests check when alerts fire, not their wording
        groups = [{**group, "rules": [{k: v for k, v in rule.items() if k != "annotations"}
                                      for rule in group["rules"]]} for group in groups]
    path = folder / ("rules.yaml" if with_annotations else "rules-bare.yaml")
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def promtool() -> str:
    return require_tool("promtool", PROMTOOL,
                        install_hint="run .ci/run, which unpacks it from Debian's prometheus package")


def test_promtool_accepts_the_rules(production_render: Rendered, tmp_path: Path) -> None:
    tool = promtool()
    rules = write_rules(production_render, tmp_path, with_annotations=True)
    run = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_alerts_fire_when_they_should_and_only_then(production_render: Rendered, tmp_path: Path) -> None:
    tool = promtool()
    rules = write_rules(production_render, tmp_path, with_annotations=False)
    tests = [
        {"interval": "1m", "input_series": inputs,
         "alert_rule_test": [{"eval_time": at, "alertname": alert,
                              "exp_alerts": [{"exp_labels": labels} for labels in expected]}]}
        for alert, inputs, at, expected in ALERT_CASES
    ]
    spec = tmp_path / "alerts-test.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m",
                                    "tests": tests}, sort_keys=False))
    run = subprocess.run([tool, "test", "rules", str(spec)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
