"""The Helm chart with the real helm: lint, template every ci/ values file, schema and fail() guards.

Only the NOTES test needs the control plane (helm install --dry-run=client asks it for its version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helm import CHART, CI_VALUES, helm, render

# Rendering needs only helm (built by scripts/testbin helm, which `make test-unit` runs first).


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_there_is_a_ci_values_file_per_mode() -> None:
    assert {p.name for p in CI_VALUES} >= {"oidc-values.yaml", "github-values.yaml", "static-values.yaml",
                                          "lifecycle-values.yaml"}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict(values: Path) -> None:
    out = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_template_renders_hardened_workloads(values: Path) -> None:
    docs = render(values)
    deployments = by_kind(docs, "Deployment")
    assert deployments
    for dep in deployments:
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert dep["spec"]["selector"]["matchLabels"].keys() <= dep["spec"]["template"]["metadata"]["labels"].keys()
        assert "app.kubernetes.io/version" not in dep["spec"]["selector"]["matchLabels"]
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"]
    broker = next(d for d in deployments if d["metadata"]["name"].endswith("-broker"))
    container = broker["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert broker["spec"]["replicas"] == 2
    assert by_kind(docs, "PodDisruptionBudget")


def test_broker_rbac_is_read_only_allowlist_watch() -> None:
    docs = render(CHART / "ci" / "oidc-values.yaml")
    role = next(d for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith("-broker"))
    assert role["rules"] == [{"apiGroups": ["preview-broker.io"], "resources": ["previewenvironments"],
                              "verbs": ["get", "list", "watch"]}]


def test_static_mode_grants_nothing_cluster_wide() -> None:
    docs = render(CHART / "ci" / "static-values.yaml")
    assert by_kind(docs, "ClusterRole") == [] and by_kind(docs, "Role") == []
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_namespace_delete_only_when_expiry_deletes() -> None:
    def controller_verbs(*sets: str) -> list[str]:
        docs = render(CHART / "ci" / "oidc-values.yaml", *sets)
        role = next(d for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith("-controller"))
        return next(r["verbs"] for r in role["rules"] if r["resources"] == ["namespaces"])

    assert "delete" in controller_verbs("controller.expiryAction=delete", "controller.closed.action=revoke")
    assert "delete" not in controller_verbs("controller.expiryAction=revoke", "controller.closed.action=revoke")


def test_lease_permissions_are_namespaced_and_named() -> None:
    docs = render(CHART / "ci" / "oidc-values.yaml")
    (role,) = by_kind(docs, "Role")
    named = next(r for r in role["rules"] if "resourceNames" in r)
    assert named["resourceNames"] == ["pb-preview-broker-controller"] and set(named["verbs"]) == {"get", "update"}


@pytest.mark.parametrize(
    "bad_set",
    ["broker.replicaCont=3", "provider.kind=gitlab", "controller.expiryAction=archive", "typo=1",
     "broker.ingress.clasName=nginx", "controller.defaultTtl=three days", "broker.forwardAuthProxy=envoy",
     "broker.metricsPort=0", "provider.oidcEmailVerified=trust"],
)
def test_schema_refuses_unknown_or_invalid_values(bad_set: str) -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(CHART / "ci" / "oidc-values.yaml"), "--set", bad_set,
                check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower() or "values don't meet" in proc.stderr.lower()


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["publicUrl="], "publicUrl is required"),
        (["publicUrl=http://auth.example.com"], "must start with https://"),
        (["controller.enabled=false"], "needs controller.enabled=true"),
        (["authorization.allowedEmailDomains=null"], "at least one authorization rule"),
        (["controller.leaderElection=false"], "needs controller.leaderElection=true"),
        (["secrets.clientSecret="], "secrets.existingSecret"),
        (["broker.relayClientIds={pr-app,preview-broker}"], "the gate client is never relayable"),
        (["broker.metricsPort=8080"], "metrics stay off the public port"),
        # An HTTPRoute needs its Gateway and replaces the Ingress.
        (["broker.httpRoute.enabled=true", "broker.httpRoute.parentRefs[0].name=web"], "expose the broker one way"),
        (["broker.ingress.enabled=false", "broker.httpRoute.enabled=true"], "needs broker.httpRoute.parentRefs"),
        # The Entra preset trusts one tenant's directory, never every tenant's.
        (["provider.oidcEmailVerified=entra"], "needs provider.oidcIssuer of one tenant"),
        (["provider.oidcEmailVerified=entra", "provider.oidcIssuer=https://login.microsoftonline.com/common/v2.0"],
         "needs provider.oidcIssuer of one tenant"),
        (["provider.oidcEmailVerified=entra",
          "provider.oidcIssuer=https://login.microsoftonline.com/organizations/v2.0"], "never common, organizations"),
    ],
)
def test_invalid_combinations_fail_with_a_clear_message(sets: list[str], message: str) -> None:
    args = ["template", "pb", str(CHART), "-f", str(CHART / "ci" / "oidc-values.yaml")]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args, check=False)
    assert proc.returncode != 0 and message in proc.stderr


@pytest.mark.cluster
def test_notes_print_redirect_uri_and_annotations(control_plane) -> None:
    out = helm("install", "pb", str(CHART), "-f", str(CHART / "ci" / "oidc-values.yaml"), "--dry-run=client",
               "--namespace", "preview-broker", "--kubeconfig", str(control_plane.kubeconfig)).stdout
    assert "https://auth.preview.example.com/oauth2/callback" in out
    # oidc-values.yaml is behind nginx: its annotations, not Traefik's, and relay with the app client
    assert "nginx.ingress.kubernetes.io/auth-url" in out and "nginx.ingress.kubernetes.io/auth-signin" in out
    assert "kind: Middleware" not in out and "client_id=pr-app&" in out
    traefik = helm("install", "pb", str(CHART), "-f", str(CHART / "ci" / "oidc-values.yaml"), "--dry-run=client",
                   "--set", "broker.forwardAuthProxy=traefik", "--set", "broker.relayClientIds=null",
                   "--namespace", "preview-broker", "--kubeconfig", str(control_plane.kubeconfig)).stdout
    assert "kind: Middleware" in traefik and "traefik.ingress.kubernetes.io/router.middlewares" in traefik
    assert "authRequestHeaders: [Cookie, Accept, Origin, Sec-Fetch-Site]" in traefik
    assert "nginx.ingress.kubernetes.io/auth-url" not in traefik and "Relay mode" in traefik and "off." in traefik


def test_metrics_have_their_own_port_which_the_ingress_never_routes() -> None:
    docs = render(CHART / "ci" / "oidc-values.yaml", "serviceMonitor.enabled=true")
    broker = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-broker"))
    container = broker["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-1] == "--metrics-port=9090"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080, "metrics": 9090}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PREVIEW_BROKER_FORWARD_AUTH_PROXY"] == "nginx" and env["PREVIEW_BROKER_RELAY_CLIENT_IDS"] == "pr-app"
    (ingress,) = by_kind(docs, "Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/oauth2"]
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_every_value_has_a_comment() -> None:
    """Each key has a comment above it, or sits inside a value whose key has one (e.g. resources)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    commented: list[tuple[int, bool]] = []  # (indent, has comment) of the enclosing keys
    missing = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while commented and commented[-1][0] >= indent:
            commented.pop()
        has_comment = lines[i - 1].strip().startswith("#")
        inherited = any(c for _, c in commented)
        is_group = stripped.endswith(":")
        if not (has_comment or inherited or is_group):
            missing.append(stripped)
        commented.append((indent, has_comment))
    assert missing == []


def test_github_app_credentials_are_wired_from_the_secret() -> None:
    docs = render(CHART / "ci" / "lifecycle-values.yaml")
    dep = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-controller"))
    spec = dep["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["PREVIEW_BROKER_GITHUB_APP_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "preview-broker-github", "key": "app-id"}
    assert env["PREVIEW_BROKER_GITHUB_APP_PRIVATE_KEY_FILE"]["value"] == "/etc/preview-broker/github/private-key"
    volume = next(v for v in spec["volumes"] if v["name"] == "github")
    assert volume["secret"]["secretName"] == "preview-broker-github"
    sa = next(d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"].endswith("-controller"))
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]


def test_the_broker_can_be_exposed_through_an_httproute_instead_of_the_ingress() -> None:
    docs = render(CHART / "ci" / "oidc-values.yaml", "broker.ingress.enabled=false", "broker.httpRoute.enabled=true",
                  "broker.httpRoute.parentRefs[0].name=web", "broker.httpRoute.parentRefs[0].namespace=gateways",
                  "broker.httpRoute.parentRefs[0].sectionName=https")
    assert by_kind(docs, "Ingress") == []
    (route,) = by_kind(docs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "web", "namespace": "gateways", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["auth.preview.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/oauth2"}}]  # never /metrics
    assert rule["backendRefs"] == [{"name": "pb-preview-broker-broker", "port": 80}]


@pytest.mark.parametrize("bad_set", ["broker.httpRoute.parentRef[0].name=x", "broker.httpRoute.parentRefs[0].nam=x",
                                     "broker.extAuthPrefix=/ext", "controller.authWiring.default=envoy",
                                     "controller.authWiring.modes={istio}"])
def test_the_schema_refuses_typos_in_the_gateway_values(bad_set: str) -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(CHART / "ci" / "oidc-values.yaml"), "--set", bad_set,
                check=False)
    assert proc.returncode != 0 and "schema" in proc.stderr.lower() + proc.stdout.lower()


def test_header_groups_reach_the_broker_as_one_comma_list() -> None:
    def broker_env(*sets: str) -> dict[str, str]:
        docs = render(CHART / "ci" / "oidc-values.yaml", *sets)
        dep = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-broker"))
        return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert "PREVIEW_BROKER_HEADER_GROUPS" not in broker_env()  # the default: the rules' groups only
    assert broker_env("authorization.headerGroups={team-*,admins}")["PREVIEW_BROKER_HEADER_GROUPS"] == "team-*,admins"
