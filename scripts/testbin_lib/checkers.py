"""What checks the project's other artefacts: helm (the chart), promtool (the alerts' and the
dashboard's queries, tests/operations) and actionlint (.github/workflows, tests/test_release.py)."""

from __future__ import annotations

from .core import Tool

HELM_VERSION = "v3.22.0"
# Prometheus 3.16's Go module (Prometheus tags its module v0.3MM.P for release 3.MM.P): promtool
# parses and evaluates the chart's alerts and the dashboard's queries (tests/operations).
PROMETHEUS_VERSION = "v0.316.0"
ACTIONLINT_VERSION = "v1.7.12"  # checks .github/workflows (tests/test_release.py)


def _helm_ldflags(version: str) -> str:
    # As helm's own Makefile stamps them: its version, and the Kubernetes version it was
    # built against (client-go v0.37), which `helm template` and `helm lint` assume.
    return " ".join(
        [
            "-s -w",
            f"-X helm.sh/helm/v3/internal/version.version={version}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37",
        ]
    )


def _prometheus_ldflags(version: str) -> str:
    return f"-s -w -X github.com/prometheus/common/version.Version={version.lstrip('v')}"


def _actionlint_ldflags(version: str) -> str:
    return f"-s -w -X github.com/rhysd/actionlint.version={version}"


HELM = Tool(
    name="helm",
    module="helm.sh/helm/v3",
    version=HELM_VERSION,
    packages=(("helm.sh/helm/v3/cmd/helm", "helm"),),
    ldflags=_helm_ldflags,
)
PROMTOOL = Tool(
    name="promtool",
    module="github.com/prometheus/prometheus",
    version=PROMETHEUS_VERSION,
    packages=(("github.com/prometheus/prometheus/cmd/promtool", "promtool"),),
    ldflags=_prometheus_ldflags,
)
ACTIONLINT = Tool(
    name="actionlint",
    module="github.com/rhysd/actionlint",
    version=ACTIONLINT_VERSION,
    packages=(("github.com/rhysd/actionlint/cmd/actionlint", "actionlint"),),
    ldflags=_actionlint_ldflags,
)
