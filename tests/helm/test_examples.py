"""helm/examples: the ApplicationSet manages each preview's Namespace, and the controller understands it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from foundation import contract
from tests.support.controller_rig import DOMAIN, eventually, make_rig
from tests.support.controlplane import ControlPlane
from tests.support.helm import helm

EXAMPLES = Path(__file__).resolve().parents[2] / "helm" / "examples"
APPSET = EXAMPLES / "applicationset.yaml"
SHA = "e" * 40


def generated_application(number: str) -> dict:
    """The Application the ApplicationSet makes for pull request `number` (its Go template filled in)."""
    text = APPSET.read_text().replace("{{ .number }}", number).replace("{{ .head_sha }}", SHA)
    assert "{{" not in text.split("template:", 1)[1], "a template variable the test does not fill"
    return yaml.safe_load(text)["spec"]["template"]


def namespace_manifest(tmp_path: Path, number: str) -> dict:
    (source,) = [s for s in generated_application(number)["spec"]["sources"] if s["path"] == "deploy/preview-namespace"]
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(source["helm"]["valuesObject"]))
    out = helm("template", "preview", str(EXAMPLES / "preview-namespace"), "-f", str(values)).stdout
    (doc,) = [d for d in yaml.safe_load_all(out) if d]
    return doc


def test_the_namespace_is_an_application_resource_not_a_create_namespace_side_effect() -> None:
    appset = yaml.safe_load(APPSET.read_text())
    assert appset["spec"]["syncPolicy"]["preserveResourcesOnDeletion"] is False  # Applications get the finalizer
    sync = appset["spec"]["template"]["spec"]["syncPolicy"]
    assert "CreateNamespace=true" not in (sync.get("syncOptions") or [])  # argo-cd#7875: never pruned
    assert "managedNamespaceMetadata" not in sync and sync["automated"]["prune"] is True
    paths = [s["path"] for s in appset["spec"]["template"]["spec"]["sources"]]
    assert paths == ["deploy/preview-namespace", "deploy/preview"]


def test_the_namespace_chart_carries_what_the_controller_reads(tmp_path: Path) -> None:
    ns = namespace_manifest(tmp_path, "123")
    assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "pr-123"
    assert generated_application("123")["spec"]["destination"]["namespace"] == "pr-123"
    assert ns["metadata"]["labels"] == {contract.LABEL_PREVIEW: "true", contract.LABEL_PR: "123"}
    assert ns["metadata"]["annotations"] == {
        "argocd.argoproj.io/sync-wave": "-1",
        contract.ANN_HOST: "pr-123.preview.example.com",
        contract.ANN_GITHUB_REPO: "acme/shop",
        contract.ANN_GITHUB_SHA: SHA,
        contract.ANN_ARGOCD_APP: "argocd/shop-pr-123",
        contract.ANN_TTL: "72h",
        contract.ANN_DATABASE: "true",
        contract.ANN_BUCKET: "true",
    }
    assert ns["metadata"]["annotations"][contract.ANN_ARGOCD_APP] == f"argocd/{generated_application('123')['metadata']['name']}"


def test_the_namespace_chart_refuses_to_render_without_a_name() -> None:
    proc = helm("template", "preview", str(EXAMPLES / "preview-namespace"), check=False)
    assert proc.returncode != 0 and "name is required" in proc.stderr


@pytest.mark.cluster
async def test_the_controller_takes_up_a_namespace_the_example_deploys(control_plane: ControlPlane, tmp_path) -> None:
    number = str(uuid.uuid4().int % 10**6)
    ns = namespace_manifest(tmp_path, number)
    host = f"pr-{number}.{DOMAIN}"
    assert ns["metadata"]["annotations"][contract.ANN_HOST] == host
    ns["metadata"]["annotations"][contract.ANN_DATABASE] = "false"  # no CNPG operator here: a plain preview
    ns["metadata"]["annotations"][contract.ANN_BUCKET] = "false"
    async with make_rig(control_plane) as rig:
        assert (await rig.api.post("/api/v1/namespaces", json=ns)).status_code == 201
        await eventually(lambda: host in rig.allowlist, "the example's host published")
        pe = await rig.preview(ns["metadata"]["name"])
        assert pe["spec"]["pullRequest"] == number and pe["status"]["phase"] == "Ready"
        assert pe["status"]["activity"]["sha"] == SHA and pe["status"]["expiresAt"]  # ttl from the last push
