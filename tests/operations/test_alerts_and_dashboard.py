"""The alerts (files/alerts.yaml) and the Grafana dashboard (files/dashboard.json) with the real promtool:
every expression parses; every metric it names is in the components' real exposition; evaluated on
scrapes of a healthy broker and controller, every dashboard query has data and no alert fires; and
each alert fires on the failure it is about (the same scrapes with that failure written in)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from tests.support import scrapes as scrape_sources
from tests.support.helm import CHART, render
from tests.support.promql import (
    STEPS,
    alert_rules,
    dashboard_queries,
    exposed_names,
    has_data_rules,
    input_series,
    metric_names,
    promtool,
    run_rule_tests,
)

EVAL = f"{STEPS}m"
JOBS = {"broker": ("preview-broker-broker", "10.0.0.11:9090"),
        "controller": ("preview-broker-controller", "10.0.0.21:9090")}


@pytest.fixture(scope="module", params=[
    pytest.param("in_process"),
    pytest.param("processes", marks=pytest.mark.cluster),
])
def scrapes(request, tmp_path_factory) -> dict[str, tuple[str, str]]:
    if request.param == "in_process":
        return scrape_sources.in_process()
    return scrape_sources.processes(request.getfixturevalue("control_plane"), tmp_path_factory.mktemp("ops"))


@pytest.fixture(scope="module")
def healthy(scrapes) -> list[dict[str, str]]:
    return [s for component, (first, second) in scrapes.items()
            for s in input_series(first, second, job=JOBS[component][0], instance=JOBS[component][1])]


def _without_annotations(rules: list[dict]) -> list[dict]:
    """Alert rules as evaluated here: their annotations' templates (checked by promtool check rules) render
    values no test can spell in advance, and promtool test compares annotations exactly."""
    return [{k: v for k, v in rule.items() if k != "annotations"} for rule in rules]


def test_promtool_accepts_the_alerts() -> None:
    proc = promtool("check", "rules", str(CHART / "files" / "alerts.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def test_promtool_parses_every_dashboard_query(tmp_path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    (tmp_path / "panels.yaml").write_text(yaml.safe_dump({"groups": [{"name": "panels",
                                                                      "rules": has_data_rules(queries)}]}))
    proc = promtool("check", "rules", str(tmp_path / "panels.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_expositions_pass_promtool_s_lint(scrapes) -> None:
    import subprocess

    from tests.support.testbin import binary

    for component, (_, second) in scrapes.items():
        proc = subprocess.run([str(binary("promtool")), "check", "metrics"], input=second, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, (component, proc.stdout + proc.stderr)


def test_every_metric_an_expression_names_is_exposed(scrapes) -> None:
    exposed = set().union(*(exposed_names(second) for _, second in scrapes.values()))
    exprs = [rule["expr"] for rule in alert_rules()] + [expr for _, expr in dashboard_queries()]
    named = set().union(*(metric_names(e) for e in exprs))
    assert len(named) >= 20
    assert sorted(named - exposed) == []


def test_on_healthy_scrapes_every_panel_has_data_and_no_alert_fires(tmp_path, healthy) -> None:
    queries = dashboard_queries()
    groups = [{"name": "alerts", "rules": _without_annotations(alert_rules())},
              {"name": "panels", "rules": has_data_rules(queries)}]
    checks = [{"eval_time": EVAL, "alertname": rule["alert"], "exp_alerts": []} for rule in alert_rules()]
    checks += [{"eval_time": EVAL, "alertname": rule["alert"], "exp_alerts": [{"exp_annotations": rule["annotations"]}]}
               for rule in has_data_rules(queries)]
    proc = run_rule_tests(tmp_path, groups, [{"interval": "1m", "input_series": healthy, "alert_rule_test": checks}])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def _set(series: list[dict], name: str, values, **labels: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """Series named `name` whose labels include `labels` get `values(series)` instead of theirs."""
    out = copy.deepcopy(series)
    hits = 0
    for s in out:
        selector = s["series"]
        if selector.split("{", 1)[0] == name and all(f'{k}="{v}"' in selector for k, v in labels.items()):
            s["values"] = values(selector)
            hits += 1
    assert hits, f"no series {name} {labels} in the scrapes"
    return out


def _drop(series: list[dict], job: str) -> list[dict]:
    return [s for s in series if f'job="{job}"' not in s["series"]]


def _add(series: list[dict], selector: str, values: str) -> list[dict]:
    return [*series, {"series": selector, "values": values}]


def _slow(selector: str, threshold: float) -> str:
    """A histogram's bucket series where every observation from now on is slower than `threshold`."""
    le = selector.split('le="', 1)[1].split('"', 1)[0]
    return f"0x{STEPS}" if le != "+Inf" and float(le) < threshold else f"0+5x{STEPS}"


BROKER, CONTROLLER = (JOBS[c][0] for c in ("broker", "controller"))
B = f'job="{BROKER}",instance="{JOBS["broker"][1]}"'
C = f'job="{CONTROLLER}",instance="{JOBS["controller"][1]}"'
CASES = {
    "PreviewBrokerBrokerAbsent": (lambda s: _drop(s, BROKER), {"component": "broker", "severity": "critical"}),
    "PreviewBrokerControllerAbsent": (lambda s: _drop(s, CONTROLLER), {"component": "controller", "severity": "critical"}),
    "PreviewBrokerServerErrors": (
        lambda s: _add(s, f'preview_broker_requests_total{{{B},endpoint="callback",code="500"}}', f"0+100x{STEPS}"),
        {"job": BROKER, "severity": "warning"}),
    "PreviewBrokerIdentityProviderFailing": (
        lambda s: _set(s, "preview_broker_upstream_errors_total", lambda _: f"0+50x{STEPS}", upstream="idp", reason="5xx"),
        {"job": BROKER, "severity": "warning"}),
    "PreviewBrokerIdentityProviderSlow": (
        lambda s: _set(s, "preview_broker_upstream_request_duration_seconds_bucket", lambda x: _slow(x, 10),
                       upstream="idp"),
        {"job": BROKER, "severity": "warning"}),
    "PreviewBrokerForwardAuthSlow": (
        lambda s: _set(s, "preview_broker_request_duration_seconds_bucket", lambda x: _slow(x, 0.5), endpoint="auth"),
        {"job": BROKER, "severity": "warning"}),
    "PreviewBrokerRestarting": (
        lambda s: _set(s, "process_start_time_seconds", lambda _: f"1000+60x{STEPS}", job=BROKER),
        {"job": BROKER, "instance": JOBS["broker"][1], "severity": "warning"}),
    "PreviewBrokerNoLeader": (lambda s: _set(s, "preview_broker_leader", lambda _: f"0x{STEPS}"), {"severity": "critical"}),
    "PreviewBrokerQueueStuck": (
        lambda s: _set(s, "preview_broker_queue_oldest_seconds", lambda _: f"900x{STEPS}"),
        {"job": CONTROLLER, "severity": "warning"}),
    "PreviewBrokerReconcileErrors": (
        lambda s: _add(_set(s, "preview_broker_reconcile_duration_seconds_count", lambda _: f"0+10x{STEPS}"),
                       f"preview_broker_reconcile_errors_total{{{C}}}", f"0+5x{STEPS}"),
        {"job": CONTROLLER, "severity": "warning"}),
    "PreviewBrokerWatchRestarting": (
        lambda s: _add(s, f'preview_broker_watch_restarts_total{{{C},watch="namespaces",reason="error"}}', f"0+1x{STEPS}"),
        {"job": CONTROLLER, "watch": "namespaces", "severity": "warning"}),
    "PreviewBrokerGitHubFailing": (
        lambda s: _set(s, "preview_broker_upstream_errors_total", lambda _: f"0+3x{STEPS}", upstream="github",
                       reason="timeout"),
        {"job": CONTROLLER, "severity": "warning"}),
    "PreviewBrokerBucketsNotEmptied": (
        lambda s: _set(s, "preview_broker_upstream_errors_total", lambda _: f"0+1x{STEPS}", upstream="s3",
                       reason="network"),
        {"job": CONTROLLER, "severity": "warning"}),
    "PreviewBrokerPreviewsFailed": (
        lambda s: _set(s, "preview_broker_previews", lambda _: f"2x{STEPS}", phase="Failed"), {"severity": "info"}),
}


def test_there_is_a_failure_case_for_every_alert() -> None:
    assert sorted(CASES) == sorted(rule["alert"] for rule in alert_rules())


@pytest.mark.parametrize("alert", sorted(CASES))
def test_each_alert_fires_on_its_failure(tmp_path, healthy, alert) -> None:
    broken, labels = CASES[alert]
    checks = [{"eval_time": EVAL, "alertname": alert, "exp_alerts": [{"exp_labels": labels}]}]
    proc = run_rule_tests(tmp_path, [{"name": "alerts", "rules": _without_annotations(alert_rules())}],
                          [{"interval": "1m", "input_series": broken(healthy), "alert_rule_test": checks}])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_chart_ships_the_same_alerts_and_dashboard() -> None:
    assert [d for d in render(CHART / "ci" / "oidc-values.yaml") if d["kind"] in ("PrometheusRule", "ConfigMap")] == []
    docs = render(CHART / "ci" / "oidc-values.yaml", "prometheusRule.enabled=true", "prometheusRule.labels.release=kp",
                  "dashboard.enabled=true", "dashboard.namespace=grafana")
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["metadata"]["labels"]["release"] == "kp"
    (dashboard,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert dashboard["metadata"]["namespace"] == "grafana" and dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["preview-broker.json"]) == json.loads((CHART / "files" / "dashboard.json").read_text())


def test_the_packaged_chart_carries_the_files_and_leaves_ci_out(tmp_path: Path) -> None:
    import tarfile

    from tests.support.helm import helm

    helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("preview-broker-*.tgz")
    with tarfile.open(package) as archive:
        names = archive.getnames()
    assert "preview-broker/files/alerts.yaml" in names and "preview-broker/README.md" in names
    assert not [n for n in names if "/ci/" in n]
