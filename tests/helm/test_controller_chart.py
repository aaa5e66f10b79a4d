"""The chart's controller part: settings wired from values, least-privilege RBAC, schema and fail() guards."""

from __future__ import annotations

import json

import pytest

from controller.settings import ControllerSettings
from foundation.config import load
from tests.support.helm import CHART, helm, render

OIDC = CHART / "ci" / "oidc-values.yaml"
LIFECYCLE = CHART / "ci" / "lifecycle-values.yaml"


def controller_env(values=OIDC, *sets: str) -> dict[str, str]:
    docs = render(values, *sets)
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-controller"))
    return {e["name"]: e.get("value", "<from secret>") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def cluster_rules(values=OIDC, *sets: str) -> dict[str, list[str]]:
    docs = render(values, *sets)
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-controller"))
    return {",".join(r["resources"]): r["verbs"] for r in role["rules"]}


def test_the_controller_settings_the_chart_writes_are_the_ones_it_reads() -> None:
    env = controller_env(LIFECYCLE)
    plain = {k: v for k, v in env.items() if v != "<from secret>"}
    plain["PREVIEW_BROKER_GITHUB_APP_PRIVATE_KEY_FILE"] = ""  # a file the pod mounts; not here
    plain["PREVIEW_BROKER_GITHUB_APP_ID"] = plain["PREVIEW_BROKER_GITHUB_APP_INSTALLATION_ID"] = ""
    settings = load(ControllerSettings, plain)  # every name known, every value valid
    assert settings.public_url == "https://auth.preview.example.com"
    assert settings.reserved == {"status.preview.example.com": "reserved (RESERVED_HOSTS)",
                                 "auth.preview.example.com": "the broker's own host (PUBLIC_URL)"}
    assert (settings.lease_duration, settings.renew_deadline_seconds, settings.retry_period_seconds) == (20, 12, 3)
    assert (settings.closed_action, settings.closed_grace, settings.dry_run) == ("delete", 900, False)
    assert settings.argocd_namespace == "argocd" and settings.pull_request_check_interval == 600
    assert settings.database_mode == "plugin" and settings.database_storage_class == "gp3"
    assert settings.database_image == "ghcr.io/cloudnative-pg/postgresql:17.5"
    assert settings.database_resources.model_dump() == {"requests": {"cpu": "1", "memory": "256Mi"},
                                                        "limits": {"memory": "512Mi"}}
    assert settings.database_recovery_target_time == "2026-11-27T23:00:00Z"


def test_defaults_derive_the_lease_timings_and_use_the_barman_plugin() -> None:
    env = controller_env()
    assert env["PREVIEW_BROKER_LEASE_DURATION"] == "15"
    assert "PREVIEW_BROKER_RENEW_DEADLINE" not in env and "PREVIEW_BROKER_RETRY_PERIOD" not in env  # 2/3, 2/15
    assert env["PREVIEW_BROKER_DATABASE_MODE"] == "plugin" and env["PREVIEW_BROKER_DATABASE_RESOURCES"] == "{}"
    assert env["PREVIEW_BROKER_ARGOCD_NAMESPACE"] == "" and env["PREVIEW_BROKER_DRY_RUN"] == "false"


def test_liveness_is_the_controllers_own_healthz() -> None:
    docs = render(OIDC)
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-controller"))
    probe = dep["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "metrics"} and probe["failureThreshold"] == 3


def controller_settings(values=OIDC, *sets: str) -> ControllerSettings:
    """The settings the rendered controller Deployment starts with (GitHub credentials, which the pod mounts
    from a Secret, stand in as a token)."""
    env = controller_env(values, *sets)
    github = {"PREVIEW_BROKER_GITHUB_APP_ID", "PREVIEW_BROKER_GITHUB_APP_INSTALLATION_ID",
              "PREVIEW_BROKER_GITHUB_APP_PRIVATE_KEY_FILE", "PREVIEW_BROKER_GITHUB_TOKEN_FILE"}
    plain = {k: v for k, v in env.items() if k not in github and v != "<from secret>"}
    if github & set(env):
        plain["PREVIEW_BROKER_GITHUB_TOKEN"] = "ghp_stand_in"
    return load(ControllerSettings, plain)


GITHUB = ("controller.github.enabled=true", "controller.github.existingSecret=gh")
# Each way a namespace can come to be deleted, and each way it cannot (issue 25, item 9).
DELETION = [
    ((), False),  # the defaults: closed.action=delete, but nothing can see a close
    (GITHUB, True),  # pull-request lookups see closes
    ((*GITHUB, "controller.github.auth=token"), True),
    ((*GITHUB, "controller.github.pullRequestCheckInterval=0s"), False),  # statuses only: no close is seen
    ((*GITHUB, "controller.github.pullRequestCheckInterval=0h0m"), False),
    (("controller.argocd.namespace=argocd",), True),  # a gone Application is a close
    (("controller.argocd.namespace=argocd", "controller.closed.action=revoke"), False),
    (("controller.expiryAction=delete",), True),  # expiry deletes, even without defaultTtl (annotations)
    (("controller.expiryAction=delete", "controller.dryRun=true"), False),  # a dry run deletes nothing
    (("controller.argocd.namespace=argocd", "controller.dryRun=true"), False),
]


@pytest.mark.parametrize(("sets", "deletes"), DELETION)
def test_namespace_delete_is_granted_exactly_when_the_controllers_settings_can_delete(sets, deletes) -> None:
    """The chart's condition and the controller's (settings.deletes_namespaces) agree on every combination."""
    rules = cluster_rules(OIDC, "controller.expiryAction=revoke", *sets)  # the chart's defaults, then `sets`
    assert ("delete" in rules["namespaces"]) is deletes
    assert controller_settings(OIDC, "controller.expiryAction=revoke", *sets).deletes_namespaces is deletes


ADDON_RULES = {
    "database": {"clusters": ["get", "list", "watch", "create"], "objectstores": ["get", "create"]},
    "bucket": {"buckets": ["get", "list", "watch", "create", "patch"]},
}
ADDONS = [(), ("database",), ("bucket",), ("database", "bucket")]


@pytest.mark.parametrize("on", ADDONS, ids=lambda on: "+".join(on) or "none")
def test_an_add_on_and_its_rights_are_there_only_when_enabled(on) -> None:
    sets = [f"controller.{a}.enabled=true" for a in on]
    rules = cluster_rules(OIDC, *sets)
    for addon, granted in ADDON_RULES.items():
        for resource, verbs in granted.items():
            assert rules.get(resource) == (verbs if addon in on else None)
    settings = controller_settings(OIDC, *sets)
    assert (settings.database_enabled, settings.bucket_enabled) == ("database" in on, "bucket" in on)


@pytest.mark.parametrize("addon", ["database", "bucket"])
def test_creating_an_add_ons_objects_by_default_needs_the_add_on(addon) -> None:
    sets = [f"controller.{addon}.default=true", "controller.database.destinationPath=s3://b/p"]
    proc = helm("template", "pb", str(CHART), "-f", str(OIDC), *[a for s in sets for a in ("--set", s)], check=False)
    assert proc.returncode != 0
    assert f"controller.{addon}.default=true needs controller.{addon}.enabled=true" in proc.stderr


CORE_RULES = {
    "ingresses": ["get", "list", "watch"],
    "httproutes": ["get", "list", "watch"],
    "previewenvironments": ["get", "list", "watch", "create", "delete"],
    "previewenvironments/status": ["get", "patch"],
    "events": ["create"],
}


def test_cluster_wide_rules_by_default_are_the_allowlist_and_its_status_only() -> None:
    """The default settings delete nothing and run no add-on: no namespace delete, no CloudNativePG, no ACK."""
    assert cluster_rules(OIDC, "controller.expiryAction=revoke") == {
        "namespaces": ["get", "list", "watch"], **CORE_RULES}


def test_cluster_wide_rules_of_the_full_lifecycle_are_exactly_what_it_needs() -> None:
    assert cluster_rules(LIFECYCLE) == {
        "namespaces": ["get", "list", "watch", "delete"], **CORE_RULES,
        **ADDON_RULES["database"], **ADDON_RULES["bucket"]}


@pytest.mark.parametrize(("sets", "middlewares", "services", "ingresses"), [
    ((), None, None, ["get", "list", "watch"]),
    (("controller.authWiring.default=traefik",), ["create", "patch"], None, ["get", "list", "watch"]),
    (("controller.authWiring.modes={nginx}",), None, ["create", "patch"], ["get", "list", "watch", "create", "patch"]),
    (("controller.authWiring.default=nginx", "controller.authWiring.modes={traefik}"), ["create", "patch"],
     ["create", "patch"], ["get", "list", "watch", "create", "patch"]),
])
def test_the_auth_wiring_is_granted_exactly_for_its_kinds(sets, middlewares, services, ingresses) -> None:
    rules = cluster_rules(OIDC, *sets)
    assert rules.get("middlewares") == middlewares
    assert rules.get("services") == services
    assert rules["ingresses"] == ingresses
    env = controller_env(OIDC, *sets)
    assert env["PREVIEW_BROKER_BROKER_INTERNAL_URL"] == "http://pb-preview-broker-broker.preview-broker.svc.cluster.local:80"


def test_argo_cd_applications_are_readable_only_in_argo_cds_namespace_and_only_when_asked() -> None:
    assert [d for d in render(OIDC) if d["metadata"]["name"].endswith("-argocd")] == []
    docs = render(LIFECYCLE)
    role, binding = (next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith("-argocd"))
                     for kind in ("Role", "RoleBinding"))
    assert role["metadata"]["namespace"] == "argocd" == binding["metadata"]["namespace"]
    assert role["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["applications"],
                              "verbs": ["get", "list", "watch"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pb-preview-broker-controller",
                                    "namespace": "preview-broker"}]
    assert "argoproj.io" not in json.dumps(cluster_rules(LIFECYCLE))


@pytest.mark.parametrize(
    "bad_set",
    ["controller.closed.action=archive", "controller.closed.grace=soon", "controller.lease.duration=1",
     "controller.lease.renewDeadline=0", "controller.database.mode=barman",
     "controller.database.recoveryTargetTime=yesterday", "controller.database.resources.requests.gpu=1",
     "controller.github.pullRequestCheckInterval=often", "controller.argocd.namespace=Argo_CD",
     "controller.reservedHosts={not a host}", "controller.dryRun=maybe", "controller.database.enabled=yes",
     "controller.bucket.enabled=1"],
)
def test_schema_refuses_invalid_controller_values(bad_set: str) -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(OIDC), "--set", bad_set, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower() or "values don't meet" in proc.stderr.lower()


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["controller.lease.renewDeadline=20"], "renewDeadline must be less than controller.lease.duration"),
        (["controller.lease.duration=12"], "renewDeadline must be less than controller.lease.duration"),  # 12 set
        (["controller.lease.retryPeriod=10"], "retryPeriod must be less than renewDeadline / 1.2"),
    ],
)
def test_lease_timings_follow_client_go_rules(sets: list[str], message: str) -> None:
    args = ["template", "pb", str(CHART), "-f", str(LIFECYCLE)]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args, check=False)
    assert proc.returncode != 0 and message in proc.stderr


def test_a_derived_renew_deadline_fits_any_lease_duration() -> None:
    assert controller_env(OIDC, "controller.lease.duration=6")["PREVIEW_BROKER_LEASE_DURATION"] == "6"


@pytest.mark.parametrize("url", ["https://auth.preview.example.com", "https://login.example.org"])
def test_one_public_url_value_reaches_both_the_broker_and_the_controller(url) -> None:
    """Issue 25, item 1: the controller refuses to start without the broker's PUBLIC_URL, and reserves its host;
    the chart writes that one setting for both Deployments from the one value publicUrl."""
    docs = render(OIDC, f"publicUrl={url}")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    seen = {name: [e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
                   if e["name"] == "PREVIEW_BROKER_PUBLIC_URL"]
            for name, dep in deployments.items()}
    assert seen == {"pb-preview-broker-broker": [url], "pb-preview-broker-controller": [url]}
    assert controller_settings(OIDC, f"publicUrl={url}").public_url == url
