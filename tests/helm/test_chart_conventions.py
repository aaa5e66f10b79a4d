"""What chart users reach for (as in the oauth2-proxy and external-dns charts), with the real helm:
names, ServiceAccounts, pod metadata, extra args and volumes, scheduling, autoscaling, monitoring,
the test hook, the Secret's checksum, the default NetworkPolicy, and every setting as a value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker.settings import BrokerSettings
from controller.settings import ControllerSettings
from foundation.config import FILE_SUFFIX, env_name, is_secret, load
from tests.support.helm import CHART, helm, render

OIDC = CHART / "ci" / "oidc-values.yaml"
LIFECYCLE = CHART / "ci" / "lifecycle-values.yaml"


def of_kind(docs: list[dict], kind: str, suffix: str = "") -> list[dict]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def deployment(docs: list[dict], component: str) -> dict:
    (dep,) = of_kind(docs, "Deployment", "-" + component)
    return dep


def container_env(dep: dict) -> dict[str, dict]:
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_name_overrides() -> None:
    names = {d["metadata"]["name"] for d in render(OIDC, "nameOverride=auth")}
    assert "pb-auth-broker" in names and "pb-auth-controller" in names
    docs = render(OIDC, "fullnameOverride=login")
    assert {"login-broker", "login-controller"} <= {d["metadata"]["name"] for d in docs}
    assert deployment(docs, "broker")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "preview-broker"


def test_service_accounts_can_be_brought_along_and_annotated() -> None:
    docs = render(OIDC, "broker.serviceAccount.create=false", "broker.serviceAccount.name=shared",
                  "controller.serviceAccount.name=ctl", "broker.serviceAccount.annotations.a=b")
    assert [d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")] == ["ctl"]
    assert deployment(docs, "broker")["spec"]["template"]["spec"]["serviceAccountName"] == "shared"
    assert deployment(docs, "controller")["spec"]["template"]["spec"]["serviceAccountName"] == "ctl"
    subjects = {s["name"] for d in of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding")
                for s in d["subjects"]}
    assert subjects == {"shared", "ctl"}  # the bindings follow the names
    annotated = render(OIDC, "broker.serviceAccount.annotations.team=platform")
    (sa,) = of_kind(annotated, "ServiceAccount", "-broker")
    assert sa["metadata"]["annotations"] == {"team": "platform"}


def test_pod_metadata_common_labels_and_selectors() -> None:
    docs = render(OIDC, "commonLabels.team=platform", "broker.podLabels.tier=auth",
                  "broker.podAnnotations.scrape=yes", "controller.podLabels.tier=ops",
                  "controller.podAnnotations.note=x")
    for doc in docs:
        assert doc["metadata"]["labels"]["team"] == "platform", doc["metadata"]["name"]
    for component, label in (("broker", "auth"), ("controller", "ops")):
        dep = deployment(docs, component)
        pod = dep["spec"]["template"]["metadata"]
        assert pod["labels"]["tier"] == label and pod["labels"]["team"] == "platform"
        assert "tier" not in dep["spec"]["selector"]["matchLabels"] and "team" not in dep["spec"]["selector"]["matchLabels"]
    assert deployment(docs, "broker")["spec"]["template"]["metadata"]["annotations"]["scrape"] == "yes"
    assert deployment(docs, "controller")["spec"]["template"]["metadata"]["annotations"] == {"note": "x"}


def test_extra_args_volumes_priority_and_spread() -> None:
    docs = render(OIDC, "broker.extraArgs={--foo=1}", "controller.extraArgs={--bar}",
                  "broker.extraVolumes[0].name=ca", "broker.extraVolumes[0].configMap.name=ca",
                  "broker.extraVolumeMounts[0].name=ca", "broker.extraVolumeMounts[0].mountPath=/etc/ca",
                  "broker.priorityClassName=system-cluster-critical",
                  "broker.topologySpreadConstraints[0].maxSkew=1",
                  "broker.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                  "broker.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway")
    broker = deployment(docs, "broker")["spec"]["template"]["spec"]
    assert broker["containers"][0]["args"][-1] == "--foo=1"
    assert deployment(docs, "controller")["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "controller", "--metrics-port=9090", "--bar"]
    assert {"name": "ca", "configMap": {"name": "ca"}} in broker["volumes"]
    assert {"name": "ca", "mountPath": "/etc/ca"} in broker["containers"][0]["volumeMounts"]
    assert broker["priorityClassName"] == "system-cluster-critical"
    (spread,) = broker["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == deployment(docs, "broker")["spec"]["selector"]["matchLabels"]


def test_the_broker_scales_with_an_hpa_when_asked() -> None:
    assert of_kind(render(OIDC), "HorizontalPodAutoscaler") == []
    docs = render(OIDC, "broker.autoscaling.enabled=true", "broker.autoscaling.maxReplicas=6",
                  "broker.autoscaling.targetMemoryUtilizationPercentage=80")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert "replicas" not in deployment(docs, "broker")["spec"]  # the HPA owns it
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pb-preview-broker-broker"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu", "memory"]


def test_service_monitors_carry_labels_interval_and_timeout() -> None:
    docs = render(OIDC, "serviceMonitor.enabled=true", "serviceMonitor.labels.release=kube-prometheus",
                  "serviceMonitor.interval=15s", "serviceMonitor.scrapeTimeout=10s")
    monitors = of_kind(docs, "ServiceMonitor")
    assert len(monitors) == 2
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
        assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                                 "scrapeTimeout": "10s"}]


def test_helm_test_asks_the_broker_service_for_readyz_with_the_chart_s_own_image() -> None:
    docs = render(OIDC)
    (pod,) = of_kind(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == deployment(docs, "broker")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert 'url = "http://pb-preview-broker-broker:80/readyz"' in container["command"][2]
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["spec"]["securityContext"]["runAsNonRoot"]
    assert of_kind(render(OIDC, "broker.test.enabled=false"), "Pod") == []


def test_a_changed_secret_restarts_the_brokers_and_nothing_else_does() -> None:
    def checksum(*sets: str) -> str:
        pod = deployment(render(OIDC, *sets), "broker")["spec"]["template"]["metadata"]
        return pod["annotations"]["checksum/secret"]

    assert checksum() != checksum("secrets.clientSecret=rotated")
    assert checksum() != checksum("secrets.secretKeys={ci-signing-key-0123456789abcdef0123456789,"
                                  "new-signing-key-0123456789abcdef0123456789}")
    assert checksum() == checksum("controller.logLevel=DEBUG")
    existing = deployment(render(OIDC, "secrets.existingSecret=mine"), "broker")["spec"]["template"]["metadata"]
    assert "annotations" not in existing  # the chart renders no Secret to sum


def test_secrets_are_mounted_as_files_not_put_in_the_environment() -> None:
    dep = deployment(render(OIDC), "broker")
    env = container_env(dep)
    assert "PREVIEW_BROKER_CLIENT_SECRET" not in env and "PREVIEW_BROKER_SECRET_KEYS" not in env
    assert env["PREVIEW_BROKER_CLIENT_SECRET_FILE"]["value"] == "/etc/preview-broker/secrets/client-secret"
    assert env["PREVIEW_BROKER_SECRET_KEYS_FILE"]["value"] == "/etc/preview-broker/secrets/secret-keys"
    volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "pb-preview-broker-secrets"
    token = container_env(deployment(render(LIFECYCLE, "controller.github.auth=token"), "controller"))
    assert token["PREVIEW_BROKER_GITHUB_TOKEN_FILE"]["value"] == "/etc/preview-broker/github/token"
    assert "PREVIEW_BROKER_GITHUB_TOKEN" not in token


def test_the_default_network_policy_admits_only_ingress_namespaces_to_the_public_port() -> None:
    docs = render(OIDC)
    broker, controller = of_kind(docs, "NetworkPolicy", "-broker")[0], of_kind(docs, "NetworkPolicy", "-controller")[0]
    public, metrics = broker["spec"]["ingress"]
    assert public["ports"] == [{"port": 8080, "protocol": "TCP"}]
    names = public["from"][0]["namespaceSelector"]["matchExpressions"][0]
    assert names["key"] == "kubernetes.io/metadata.name" and "ingress-nginx" in names["values"]
    assert public["from"][1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
    assert len(public["from"]) == 2  # nothing else, in particular no empty (= everyone) peer
    assert metrics["from"] == [{"namespaceSelector": {}}]  # in-cluster only
    assert controller["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {}}]
    opened = of_kind(render(OIDC, "networkPolicy.ingressNamespaces=null",
                            "networkPolicy.ingressNamespaceSelector.ingress=yes"), "NetworkPolicy", "-broker")[0]
    assert opened["spec"]["ingress"][0]["from"][0] == {"namespaceSelector": {"ingress": "yes"}}
    assert of_kind(render(OIDC, "networkPolicy.enabled=false"), "NetworkPolicy") == []


def test_the_image_defaults_to_the_released_path_and_the_app_version() -> None:
    chart = helm("show", "chart", str(CHART)).stdout
    app_version = next(line.split(":", 1)[1].strip().strip('"') for line in chart.splitlines()
                       if line.startswith("appVersion:"))
    image = deployment(render(OIDC), "broker")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.example.com/acme/preview-broker:{app_version}"
    proc = helm("template", "pb", str(CHART), "-f", str(OIDC), "--set", "image.repository=", check=False)
    assert proc.returncode != 0 and "image.repository is empty" in proc.stderr


@pytest.mark.parametrize(
    "bad_set",
    ["nameOverride=Bad_Name", "commonLabels.team=null", "broker.serviceAcount.create=false",
     "broker.autoscaling.enable=true", "serviceMonitor.label.release=x", "broker.podAnotations.a=b",
     "controller.serviceAccountAnnotations.a=b", "broker.sessionTtl=12 hours", "networkPolicy.ingressNamespace=x",
     "broker.logFormat=yaml", "prometheusRule.enable=true", "dashboard.labels=x"],
)
def test_the_schema_still_refuses_typos(bad_set: str) -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(OIDC), "--set", bad_set, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower() or "values don't meet" in proc.stderr.lower(), proc.stderr


# Settings the chart derives instead of offering as values (and why).
DERIVED = {
    "identity": "the pod's name",
    "kube_namespace": "the release namespace",
    "lease_name": "the controller's full name",
}
# Settings whose values come with chart work in progress elsewhere: the per-preview auth wiring needs RBAC
# for Middlewares, Services and Ingresses in preview namespaces, which goes in with its values. Remove an
# entry when its value exists (the test fails until then, so this list cannot go stale).
NOT_YET_VALUES: set[str] = set()


def _settings_env(values: Path, component: str, *sets: str) -> set[str]:
    deployments = of_kind(render(values, *sets), "Deployment", "-" + component)  # static mode: no controller
    return set(container_env(deployments[0])) if deployments else set()


@pytest.mark.parametrize(("model", "component"), [(BrokerSettings, "broker"), (ControllerSettings, "controller")])
def test_every_setting_of_both_components_is_a_value(model, component) -> None:
    """Each setting reaches the container from some value: across the modes of the ci/ files, the rendered
    environment names every setting (a secret by its _FILE form)."""
    seen: set[str] = set()
    variants = [(OIDC,), (LIFECYCLE,), (LIFECYCLE, "controller.github.auth=token"),
                (CHART / "ci" / "github-values.yaml", "authorization.githubOrgs={acme}"),
                (CHART / "ci" / "static-values.yaml",),
                (OIDC, "broker.allowedPorts={8443}", "broker.cookieDomain=preview.example.com",
                 "authorization.headerGroups={team-*}"),
                (LIFECYCLE, "extraCACerts.configMap=corporate-ca")]
    for values, *sets in variants:
        seen |= _settings_env(values, component, *sets)
    missing = []
    for name, field in model.model_fields.items():
        if name in DERIVED:
            continue
        if name in NOT_YET_VALUES:
            assert env_name(name) not in seen, f"{name} is a value now: remove it from NOT_YET_VALUES"
            continue
        forms = {env_name(name)} | ({env_name(name + FILE_SUFFIX)} if is_secret(field) else set())
        if not forms & seen:
            missing.append(env_name(name))
    assert missing == []
    derived = {env_name(n) for n in DERIVED if n in model.model_fields}
    assert derived <= seen


@pytest.mark.parametrize("values", [OIDC, LIFECYCLE, CHART / "ci" / "github-values.yaml", CHART / "ci" / "node-values.yaml"])
def test_no_container_sets_a_variable_twice(values) -> None:
    """A repeated name hides the first (kubectl warns, server-side apply refuses); the dict above would too."""
    for dep in of_kind(render(values, "authorization.githubOrgs={acme}"), "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            names = [e["name"] for e in container.get("env", [])]
            assert len(names) == len(set(names)), (dep["metadata"]["name"], sorted(n for n in names if names.count(n) > 1))


@pytest.mark.parametrize(("source", "volume"), [
    ("configMap", {"name": "extra-ca", "configMap": {"name": "corporate-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}),
    ("secret", {"name": "extra-ca", "secret": {"secretName": "corporate-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}),
])
def test_extra_ca_certs_reach_both_components_as_a_mounted_file(source, volume) -> None:
    docs = render(LIFECYCLE, f"extraCACerts.{source}=corporate-ca")
    for component in ("broker", "controller"):
        pod = deployment(docs, component)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container_env(deployment(docs, component))["PREVIEW_BROKER_EXTRA_CA_CERTS"]["value"] == \
            "/etc/preview-broker/extra-ca/ca.crt"
        assert {"name": "extra-ca", "mountPath": "/etc/preview-broker/extra-ca", "readOnly": True} in \
            container["volumeMounts"]
        assert volume in pod["volumes"]
    plain = render(LIFECYCLE)
    for component in ("broker", "controller"):
        assert "PREVIEW_BROKER_EXTRA_CA_CERTS" not in container_env(deployment(plain, component))
        assert all(v["name"] != "extra-ca" for v in deployment(plain, component)["spec"]["template"]["spec"]["volumes"])


def test_extra_ca_certs_from_both_places_is_refused() -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(LIFECYCLE), "--set", "extraCACerts.configMap=a",
                "--set", "extraCACerts.secret=b", check=False)
    assert proc.returncode != 0 and "extraCACerts: set configMap or secret, not both" in proc.stderr


def _load_with_the_charts_secret(env: dict[str, str], tmp_path: Path) -> BrokerSettings:
    """The broker's settings from a rendered environment, its Secret's files written where the env says."""
    files = {"CLIENT_SECRET": "ci-client-secret\n", "SECRET_KEYS": "ci-signing-key-0123456789abcdef0123456789\n",
             "VERIFY_KEYS": ""}  # the chart's Secret outside a key rotation
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        env[f"PREVIEW_BROKER_{name}_FILE"] = str(tmp_path / name)
    return load(BrokerSettings, env)


def test_the_broker_settings_the_chart_writes_are_the_ones_it_reads(tmp_path) -> None:
    env = {k: e.get("value", "") for k, e in container_env(deployment(render(OIDC), "broker")).items()}
    settings = _load_with_the_charts_secret(env, tmp_path)
    assert (settings.state_ttl, settings.ticket_ttl, settings.session_ttl) == (600, 60, 43200)  # 10m, 1m, 12h
    assert settings.client_secret == "ci-client-secret" and settings.log_format == "json"
    assert settings.oidc_groups_claim == "groups" and settings.idp_timeout == 10
    assert settings.verify_keys == []


def test_the_entra_preset_reaches_the_broker_which_accepts_it_with_a_tenant_issuer(tmp_path) -> None:
    tenant = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
    plain = container_env(deployment(render(OIDC), "broker"))
    assert plain["PREVIEW_BROKER_OIDC_EMAIL_VERIFIED"]["value"] == "claim"  # the default: email_verified only
    docs = render(OIDC, "provider.oidcEmailVerified=entra", f"provider.oidcIssuer={tenant}")
    env = {k: e.get("value", "") for k, e in container_env(deployment(docs, "broker")).items()}
    assert env["PREVIEW_BROKER_OIDC_EMAIL_VERIFIED"] == "entra"
    settings = _load_with_the_charts_secret(env, tmp_path)
    assert (settings.oidc_email_verified, settings.oidc_issuer) == ("entra", tenant)


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key twice in one mapping (PyYAML's keeps the last one silently)."""


def _no_duplicates(loader: _UniqueKeys, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def test_the_duplicate_key_loader_catches_a_key_twice_at_any_depth() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'extAuthPrefix'"):
        yaml.load("broker:\n  ingress: {}\n  extAuthPrefix: a\n  extAuthPrefix: b\n", Loader=_UniqueKeys)
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'x'"):
        yaml.load("a: {b: {c: {x: 1, x: 2}}}\n", Loader=_UniqueKeys)


@pytest.mark.parametrize("path", [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))],
                         ids=lambda p: p.name)
def test_values_files_have_no_duplicate_keys(path: Path) -> None:
    """Helm keeps the last of two equal keys: the first one's comment (and README entry) describes nothing."""
    yaml.load(path.read_text(), Loader=_UniqueKeys)
