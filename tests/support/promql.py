"""The chart's alerts and dashboard queries, and the real promtool that parses and evaluates them.

Scrapes become promtool's input series: two scrapes of a process, some seconds apart, are
extended into a steady half hour (counters keep their measured increase per step, gauges their
last value), with the job and instance labels Prometheus adds. An expression is evaluated by
turning it into an alert `count(<expr>) > 0`, which fires exactly when the expression has data.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helm import CHART
from tests.support.testbin import binary

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
STEPS = 40  # one-minute steps of input: longer than every alert's `for` (30m at most)
GRAFANA = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "30m"}
METRIC = re.compile(r"\b((?:preview_broker|process|python)_[a-z_]+)\b")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("promtool")), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) of every panel's targets."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA.items():
                expr = expr.replace(variable, value)
            out.append((panel["title"], expr))
    return out


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def families(scrape: str) -> dict[str, str]:
    """Metric family name -> type, from an exposition (families without samples included)."""
    names: dict[str, str] = {}
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names[name] = kind
    return names


def exposed_names(scrape: str) -> set[str]:
    """Every series name an exposition can carry (counters' _total, histograms' _bucket/_sum/_count)."""
    out = set()
    for name, kind in families(scrape).items():
        out.add(name)
        if kind == "counter":
            out |= {name + "_total", name.removesuffix("_total") + "_total"}
        if kind == "histogram":
            out |= {name + "_bucket", name + "_sum", name + "_count"}
    return out


def _selector(name: str, labels: dict[str, str]) -> str:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return name + "{" + ",".join(f"{k}={quote(v)}" for k, v in sorted(labels.items())) + "}"


def input_series(first: str, second: str, *, job: str, instance: str) -> list[dict[str, str]]:
    """promtool input series from two scrapes of one process."""
    before: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(first):
        for s in family.samples:
            before[(s.name, tuple(sorted(s.labels.items())))] = s.value
    series = []
    for family in text_string_to_metric_families(second):
        cumulative = family.type in ("counter", "histogram", "summary")
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            labels = {**s.labels, "job": job, "instance": instance}
            value = s.value
            if cumulative:
                start = before.get((s.name, tuple(sorted(s.labels.items()))), 0.0)
                step = max(value - start, 0.0)
                values = f"{start:g}+{step:g}x{STEPS}"
            else:
                values = f"{value:g}x{STEPS}"
            series.append({"series": _selector(s.name, labels), "values": values})
    return series


def run_rule_tests(tmp: Path, groups: list[dict], tests: list[dict]) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of `tests` against the rule `groups`."""
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                    "tests": tests}, sort_keys=False, width=10_000))
    return promtool("test", "rules", "tests.yaml", cwd=tmp)


def has_data_rules(queries: list[tuple[str, str]]) -> list[dict]:
    """One alert per query that fires while the query returns anything."""
    return [{"alert": f"HasData{i}", "expr": f"count({expr}) > 0", "annotations": {"panel": title}}
            for i, (title, expr) in enumerate(queries)]
