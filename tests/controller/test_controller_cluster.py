"""The controller and the broker's kubernetes allowlist against the real control plane."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from controller.reconciler import Controller
from foundation import contract
from kube.client import Kube
from tests.support.controller_rig import DOMAIN, Rig, eventually, merge_patch
from tests.support.controlplane import ControlPlane

pytestmark = [pytest.mark.cluster]


async def test_namespace_host_becomes_valid_then_leaves_before_namespace_is_gone(rig: Rig) -> None:
    host = f"{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host)
    await eventually(lambda: host in rig.allowlist, "host in the broker's allowlist")
    pe = await rig.preview(ns)
    assert pe["status"]["phase"] == "Ready" and pe["status"]["allowedHosts"] == [host]
    # A finalizer on an object inside keeps the namespace Terminating while we look.
    r = await rig.api.post(f"/api/v1/namespaces/{ns}/configmaps",
                           json={"metadata": {"name": "hold", "finalizers": ["example.com/hold"]}})
    assert r.status_code == 201
    assert (await rig.api.delete(f"/api/v1/namespaces/{ns}")).status_code == 200
    await eventually(lambda: host not in rig.allowlist, "host revoked")
    still = await rig.api.get(f"/api/v1/namespaces/{ns}")
    assert still.status_code == 200 and still.json()["status"]["phase"] == "Terminating"
    assert (await rig.preview(ns))["status"]["phase"] == "Terminating"
    await rig.api.patch(f"/api/v1/namespaces/{ns}/configmaps/hold", json={"metadata": {"finalizers": None}},
                        headers={"Content-Type": "application/merge-patch+json"})

    async def gone() -> bool:
        return (await rig.api.get(f"/api/v1/namespaces/{ns}")).status_code == 404 and await rig.preview(ns) is None

    await eventually(gone, "namespace and its PreviewEnvironment gone", 60)


async def test_ingress_hosts_join_the_allowlist(rig: Rig) -> None:
    ns = await rig.namespace()
    host = f"api-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ing = {"metadata": {"name": "web"}, "spec": {"rules": [{"host": host}, {"host": "foreign.example.org"}]}}
    assert (await rig.api.post(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", json=ing)).status_code == 201
    await eventually(lambda: host in rig.allowlist, "ingress host allowed")
    assert "foreign.example.org" not in rig.allowlist


async def test_foreign_host_refused_with_warning_event(rig: Rig) -> None:
    ns = await rig.namespace(host="login.evil.com")

    async def refused() -> bool:
        pe = await rig.preview(ns)
        return bool(pe and (pe.get("status") or {}).get("refusedHosts"))

    await eventually(refused, "refusal recorded")
    assert "login.evil.com" not in rig.allowlist

    async def warned() -> bool:
        return any(e["type"] == "Warning" and e["reason"] == "HostRefused" and "login.evil.com" in e["message"]
                   for e in await rig.events(ns))

    await eventually(warned, "HostRefused warning event")


@pytest.mark.parametrize("rig", [{"public_url": f"https://auth.{DOMAIN}/", "reserved_hosts": f"status.{DOMAIN}"}],
                         indirect=True)
async def test_the_broker_host_and_reserved_hosts_are_refused_with_a_warning(rig: Rig) -> None:
    ns = await rig.namespace(host=f"auth.{DOMAIN}")
    ing = {"metadata": {"name": "web"}, "spec": {"rules": [{"host": f"status.{DOMAIN}"}, {"host": f"ok-{ns}.{DOMAIN}"}]}}
    assert (await rig.api.post(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", json=ing)).status_code == 201
    await eventually(lambda: f"ok-{ns}.{DOMAIN}" in rig.allowlist, "the preview's own host published")

    async def warned() -> set[str]:
        return {e["message"] for e in await rig.events(ns) if e["type"] == "Warning" and e["reason"] == "HostRefused"}

    messages = await eventually(lambda: _two(warned()), "both refusals announced")
    assert messages == {f"host auth.{DOMAIN} refused: the broker's own host (PUBLIC_URL) (annotation)",
                        f"host status.{DOMAIN} refused: reserved (RESERVED_HOSTS) (ingress/web)"}
    assert f"auth.{DOMAIN}" not in rig.allowlist and f"status.{DOMAIN}" not in rig.allowlist
    assert (await rig.preview(ns))["status"]["allowedHosts"] == [f"ok-{ns}.{DOMAIN}"]


async def _two(messages: Any) -> Any:
    found = await messages
    return found if len(found) >= 2 else None


async def test_duplicate_claim_older_keeps_it_newer_warned_then_handover(rig: Rig) -> None:
    host = f"dup-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    older = await rig.namespace(host=host)
    await eventually(lambda: host in rig.allowlist, "older owns host")
    newer = await rig.newer_namespace(older, host=host)

    async def warned() -> bool:
        return any(e["reason"] == "HostRefused" and "already claimed" in e["message"] for e in await rig.events(newer))

    await eventually(warned, "newer namespace warned")
    assert (await rig.preview(older))["status"]["allowedHosts"] == [host]
    assert (await rig.preview(newer))["status"]["allowedHosts"] == []
    await rig.api.delete(f"/api/v1/namespaces/{older}")

    async def handed_over() -> bool:
        pe = await rig.preview(newer)
        return bool(pe) and pe["status"].get("allowedHosts") == [host]

    await eventually(handed_over, "newer takes over after the older is deleted", 30)
    assert host in rig.allowlist


@pytest.mark.parametrize("rig", [{"expiry_action": "delete"}], indirect=True)
async def test_ttl_expiry_with_injected_clock_deletes_namespace(rig: Rig) -> None:
    host = f"ttl-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host, annotations={contract.ANN_TTL: "2h"})
    await eventually(lambda: host in rig.allowlist, "host allowed")
    assert (await rig.preview(ns))["status"]["expiresAt"]
    rig.clock.offset = timedelta(hours=2, seconds=1)
    rig.controller.queue.add(ns)
    await eventually(lambda: host not in rig.allowlist, "expired host revoked")

    async def deleting() -> bool:
        r = await rig.api.get(f"/api/v1/namespaces/{ns}")
        return r.status_code == 404 or r.json()["status"]["phase"] == "Terminating"

    await eventually(deleting, "expired namespace deleted")


async def test_ttl_expiry_revoke_only_keeps_namespace(rig: Rig) -> None:
    host = f"rev-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host, annotations={contract.ANN_TTL: "1h"})
    await eventually(lambda: host in rig.allowlist, "host allowed")
    rig.clock.offset = timedelta(hours=1, seconds=1)
    rig.controller.queue.add(ns)
    await eventually(lambda: host not in rig.allowlist, "host revoked")
    assert (await rig.preview(ns))["status"]["phase"] == "Expired"
    assert (await rig.api.get(f"/api/v1/namespaces/{ns}")).json()["status"]["phase"] == "Active"


@pytest.mark.parametrize("rig", [{"default_ttl": "1h"}], indirect=True)
async def test_a_new_head_commit_extends_the_ttl(rig: Rig) -> None:
    host = f"act-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host, annotations={contract.ANN_GITHUB_SHA: "1" * 40})
    await eventually(lambda: host in rig.allowlist, "host allowed")
    first = (await rig.preview(ns))["status"]
    created = first["activity"]["at"]
    assert first["activity"]["sha"] == "1" * 40 and first["expiresAt"] == _plus(created, hours=1)
    rig.clock.offset = timedelta(minutes=50)
    await merge_patch(rig.api, f"/api/v1/namespaces/{ns}", {"metadata": {"annotations": {contract.ANN_GITHUB_SHA: "2" * 40}}})

    async def extended() -> dict[str, Any] | None:
        status = (await rig.preview(ns))["status"]
        return status if status["activity"]["sha"] == "2" * 40 else None

    status = await eventually(extended, "the push recorded")
    assert status["expiresAt"] == _plus(status["activity"]["at"], hours=1) > _plus(created, minutes=109)
    rig.clock.offset = timedelta(minutes=80)  # past the first TTL, within the extended one
    rig.controller.queue.add(ns)
    await asyncio.sleep(0.5)
    assert host in rig.allowlist and (await rig.preview(ns))["status"]["phase"] == "Ready"
    rig.clock.offset = timedelta(minutes=111)
    rig.controller.queue.add(ns)
    await eventually(lambda: host not in rig.allowlist, "expired an hour after the push")
    assert (await rig.preview(ns))["status"]["phase"] == "Expired"


def _plus(stamp: str, **delta: int) -> str:
    from controller.times import format_time, parse_time

    return format_time(parse_time(stamp) + timedelta(**delta))


@pytest.mark.parametrize("rig", [{"expiry_action": "delete", "dry_run": True}], indirect=True)
async def test_dry_run_records_what_it_would_delete_and_deletes_nothing(rig: Rig) -> None:
    host = f"dry-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host, annotations={contract.ANN_TTL: "1h"})
    await eventually(lambda: host in rig.allowlist, "host allowed")
    rig.clock.offset = timedelta(hours=1, seconds=1)
    rig.controller.queue.add(ns)
    await eventually(lambda: host not in rig.allowlist, "the expired host is still revoked")

    async def dry_run_events() -> list[str]:
        return [e["message"] for e in await rig.events(ns) if e["reason"] == "DryRun"]

    messages = await eventually(dry_run_events, "DryRun event")
    assert messages == [f"would delete namespace {ns}: expired at {(await rig.preview(ns))['status']['expiresAt']}"]
    for _ in range(3):  # resyncs neither delete nor repeat themselves
        rig.controller.queue.add(ns)
        await asyncio.sleep(0.3)
    assert (await rig.api.get(f"/api/v1/namespaces/{ns}")).json()["status"]["phase"] == "Active"
    assert len(await dry_run_events()) == 1
    assert (await rig.preview(ns))["status"]["dryRun"] == messages[0]


async def test_keep_label_exempts_from_ttl(rig: Rig) -> None:
    host = f"keep-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host, annotations={contract.ANN_TTL: "1h"}, labels={contract.LABEL_KEEP: "true"})
    await eventually(lambda: host in rig.allowlist, "host allowed")
    rig.clock.offset = timedelta(days=30)
    rig.controller.queue.add(ns)
    await asyncio.sleep(0.5)
    assert host in rig.allowlist and (await rig.preview(ns))["status"]["phase"] == "Ready"


DB = {"database_destination_path": "s3://backups/main", "database_source_name": "main", "database_s3_secret": "aws"}
TUNED = {**DB, "database_storage_class": "fast-ssd", "database_image": "ghcr.io/cloudnative-pg/postgresql:17.5",
         "database_resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
         "database_recovery_target_time": "2026-11-27T23:00:00Z"}


async def _set_status(rig: Rig, path: str, status: dict[str, Any]) -> None:
    r = await rig.api.patch(f"{path}/status", json={"status": status},
                            headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("rig", [{**DB, "database_mode": "in-tree"}, DB, TUNED], indirect=True,
                         ids=["in-tree", "plugin", "plugin-tuned"])
async def test_database_and_bucket_accepted_by_real_schemas_and_followed_to_ready(rig: Rig) -> None:
    ns = await rig.namespace(host=f"db-{uuid.uuid4().hex[:6]}.{DOMAIN}",
                             annotations={contract.ANN_DATABASE: "true", contract.ANN_BUCKET: "true"})
    cluster_path = f"/apis/postgresql.cnpg.io/v1/namespaces/{ns}/clusters/preview-db"
    bucket_path = f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{ns}/buckets/preview-bucket"

    async def exists(path: str) -> bool:
        return (await rig.api.get(path)).status_code == 200

    await eventually(lambda: exists(cluster_path), "CNPG Cluster created")
    await eventually(lambda: exists(bucket_path), "ACK Bucket created")
    cluster = (await rig.api.get(cluster_path)).json()  # as the real CNPG schema kept it
    assert cluster["spec"]["bootstrap"]["recovery"]["source"] == "origin"
    assert "backup" not in cluster["spec"]
    if rig.controller.settings.database_storage_class:
        assert (cluster["spec"]["storage"]["size"], cluster["spec"]["storage"]["storageClass"]) == ("1Gi", "fast-ssd")
        assert cluster["spec"]["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.5"
        assert cluster["spec"]["resources"] == TUNED["database_resources"]
        assert cluster["spec"]["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": "2026-11-27T23:00:00Z"}
    if rig.controller.settings.database_mode == "plugin":
        assert await exists(f"/apis/barmancloud.cnpg.io/v1/namespaces/{ns}/objectstores/preview-db-origin")
    assert (await rig.preview(ns))["status"]["phase"] == "Provisioning"
    await _set_status(rig, cluster_path, {"phase": "Cluster in healthy state",
                                          "conditions": [{"type": "Ready", "status": "False", "reason": "x",
                                                          "message": "", "lastTransitionTime": "2026-11-28T00:00:00Z"}]})
    await asyncio.sleep(0.5)
    assert (await rig.preview(ns))["status"]["phase"] == "Provisioning"  # phase alone is not enough
    await _set_status(rig, cluster_path, {"conditions": [{"type": "Ready", "status": "True", "reason": "x",
                                                          "message": "", "lastTransitionTime": "2026-11-28T00:00:00Z"}]})
    await _set_status(rig, bucket_path, {"conditions": [{"type": "ACK.ResourceSynced", "status": "True"}]})

    async def ready() -> bool:
        return (await rig.preview(ns))["status"]["phase"] == "Ready"

    await eventually(ready, "Ready after database and bucket")
    pe = (await rig.preview(ns))["status"]
    assert pe["database"] == "Ready" and pe["bucket"] == "Synced"


async def test_restarting_the_controller_changes_nothing(rig: Rig, control_plane: ControlPlane) -> None:
    host = f"idem-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    ns = await rig.namespace(host=host)
    await eventually(lambda: host in rig.allowlist, "host allowed")
    await eventually(lambda: rig.controller.queue.idle(), "queue idle")
    before = (await rig.preview(ns))["metadata"]["resourceVersion"]
    events_before = len(await rig.events(ns))
    kube = await Kube.from_kubeconfig(str(control_plane.kubeconfig))
    second = Controller(kube, rig.controller.settings, clock=rig.clock)
    task = asyncio.create_task(second.run())
    try:
        await eventually(lambda: second.synced, "second controller synced")
        await asyncio.sleep(1.0)
        await eventually(lambda: second.queue.idle(), "second queue idle")
        assert (await rig.preview(ns))["metadata"]["resourceVersion"] == before
        assert len(await rig.events(ns)) == events_before
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_bad_object_gets_event_not_crash(rig: Rig) -> None:
    ns = await rig.namespace(host="not a host!", annotations={contract.ANN_TTL: "whenever"})
    good = f"after-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    async def both_warned() -> bool:
        return {"HostRefused", "InvalidTTL"} <= {e["reason"] for e in await rig.events(ns)}

    await eventually(both_warned, "HostRefused and InvalidTTL events on the bad namespace")
    await rig.namespace(host=good)
    await eventually(lambda: good in rig.allowlist, "controller still works")


async def test_broker_with_kubernetes_source_accepts_then_refuses_the_host(rig: Rig) -> None:
    """The whole path: namespace -> controller -> PreviewEnvironment -> broker watch -> /oauth2/start."""
    import respx

    from broker.app import create_app
    from tests.support.brokerunit import make_settings
    from tests.support.fakeidp import FakeIdP

    host = f"app-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    settings = make_settings(allowlist_source="kubernetes", allowed_hosts=[], preview_domains=[DOMAIN])
    app = create_app(settings, allowlist=rig.allowlist)  # the rig's watch is the broker's source
    transport = httpx.ASGITransport(app=app)
    with respx.mock(assert_all_called=False) as router:
        FakeIdP(router).install()
        router.route(host="127.0.0.1").pass_through()  # the real apiserver
        await _broker_round(rig, host, transport, settings)


async def _broker_round(rig: Rig, host: str, transport: httpx.ASGITransport, settings: Any) -> None:
    async with httpx.AsyncClient(transport=transport, base_url=settings.public_url) as broker:
        async def start_status() -> int:
            r = await broker.get("/oauth2/start", params={"rd": f"https://{host}/cb"})
            return r.status_code  # 302: on to the preview host to begin the login; 400: not live

        assert await start_status() == 400
        assert (await broker.get("/readyz")).status_code == 200
        ns = await rig.namespace(host=host)
        await eventually(lambda: host in rig.allowlist, "host live")
        assert await start_status() == 302
        await rig.api.delete(f"/api/v1/namespaces/{ns}")
        await eventually(lambda: host not in rig.allowlist, "host revoked")
        assert await start_status() == 400


async def test_metrics_report_phases_allowlist_and_reconciles(rig: Rig) -> None:
    from prometheus_client import generate_latest

    host = f"m-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    await rig.namespace(host=host)
    await eventually(lambda: host in rig.allowlist, "host allowed")

    def gauges_updated() -> str | None:
        text = generate_latest(rig.controller.metrics.registry).decode()
        lines = text.splitlines()
        ready = next(x for x in lines if x.startswith('preview_broker_previews{phase="Ready"}'))
        hosts = next(x for x in lines if x.startswith("preview_broker_allowlist_hosts "))
        return text if float(ready.split()[-1]) >= 1 and float(hosts.split()[-1]) >= 1 else None

    text = await eventually(gauges_updated, "gauges counted at scrape")
    assert "preview_broker_reconcile_duration_seconds_count" in text
    # sampled from the event loop every second
    for gauge in ("preview_broker_queue_depth", "preview_broker_queue_oldest_seconds", "preview_broker_queue_delayed"):
        assert f"# TYPE {gauge} gauge" in text
