"""Teardown against the real control plane: buckets emptied through S3 (moto server), GitHub statuses."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import timedelta

import httpx
import pytest
import respx

from controller.buckets import BucketJanitor
from controller.deployments import ANN_REPO, ANN_SHA, DeploymentReporter
from controller.github import GitHubClient, StaticToken
from controller.addons.bucket import EMPTY_BUCKET_FINALIZER
from foundation import contract
from tests.support.controller_rig import DOMAIN, Rig, eventually, make_rig, merge_patch
from tests.support.controlplane import ControlPlane
from tests.support.procs import free_port

pytestmark = [pytest.mark.cluster]


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, s3_server):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    return s3_server


@pytest.fixture
async def s3(aws_env):
    from aiobotocore.session import get_session

    async with get_session().create_client("s3", endpoint_url=aws_env, region_name="us-east-1") as client:
        yield client


@pytest.fixture
async def janitor_rig(control_plane: ControlPlane, aws_env):
    async with make_rig(control_plane, bucket_default=True) as rig:
        janitor = BucketJanitor(rig.kube, rig.controller.cache, endpoint_url=aws_env)
        rig.controller.extensions.append(janitor)
        task = asyncio.create_task(rig.controller._supervise(janitor))
        try:
            yield rig
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _fill_versioned_bucket(s3, name: str, objects: int) -> None:
    await s3.create_bucket(Bucket=name)
    await s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    sem = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        async with sem:
            await s3.put_object(Bucket=name, Key=f"data/{i}.txt", Body=b"v1")
            if i % 3 == 0:
                await s3.put_object(Bucket=name, Key=f"data/{i}.txt", Body=b"v2")  # a second version
            if i % 5 == 0:
                await s3.delete_object(Bucket=name, Key=f"data/{i}.txt")  # a delete marker

    await asyncio.gather(*(put(i) for i in range(objects)))


async def _versions(s3, name: str) -> int:
    count = 0
    async for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        count += len(page.get("Versions") or []) + len(page.get("DeleteMarkers") or [])
    return count


async def _bucket_object(rig: Rig, ns: str):
    r = await rig.api.get(f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{ns}/buckets/preview-bucket")
    return r.json() if r.status_code == 200 else None


async def test_namespace_deletion_empties_the_bucket_before_the_bucket_object_goes(janitor_rig: Rig, s3, caplog) -> None:
    caplog.set_level(logging.INFO, logger="preview_broker.buckets")
    rig = janitor_rig
    ns = await rig.namespace(host=f"b-{uuid.uuid4().hex[:6]}.{DOMAIN}")
    bucket = await eventually(lambda: _bucket_object(rig, ns), "Bucket object created")
    assert EMPTY_BUCKET_FINALIZER in bucket["metadata"]["finalizers"]
    assert bucket["metadata"]["annotations"]["services.k8s.aws/deletion-policy"] == "delete"
    name = bucket["spec"]["name"]
    await _fill_versioned_bucket(s3, name, 1200)  # more than one DeleteObjects batch
    before = await _versions(s3, name)
    assert before > 1200
    await rig.api.delete(f"/api/v1/namespaces/{ns}")
    while await _bucket_object(rig, ns) is not None:
        await asyncio.sleep(0.02)
    gone_at = time.time()
    assert await _versions(s3, name) == 0
    # The order, from the janitor's own record rather than from polling S3 against it (which
    # raced on a loaded machine): every version was deleted before the Bucket object went away,
    # so the finalizer held the object until the bucket was empty.
    # (A pass that finds the bucket already empty, e.g. a repeat from a stale cache, deletes 0.)
    emptied = [r for r in caplog.records if r.msg == "bucket_emptied" and getattr(r, "namespace", "") == ns
               and r.deleted]  # type: ignore[attr-defined]
    assert emptied and sum(r.deleted for r in emptied) == before  # type: ignore[attr-defined]
    assert max(r.created for r in emptied) < gone_at

    async def namespace_gone() -> bool:
        return (await rig.api.get(f"/api/v1/namespaces/{ns}")).status_code == 404

    await eventually(namespace_gone, "namespace deletion completes", 60)


async def test_dry_run_empties_no_bucket_and_holds_it_until_turned_off(
    control_plane: ControlPlane, aws_env, s3, caplog
) -> None:
    """Someone else deletes the namespace of a preview: with DRY_RUN the janitor deletes no object in S3 and
    keeps its finalizer (the Bucket waits), saying what it would have done."""
    caplog.set_level(logging.INFO, logger="preview_broker.buckets")
    async with make_rig(
        control_plane, bucket_default=True, dry_run=True,
        extensions=lambda c: [BucketJanitor(c.kube, c.cache, endpoint_url=aws_env, dry_run=True, announce=c.announce)],
    ) as rig:
        ns = await rig.namespace(host=f"dry-{uuid.uuid4().hex[:6]}.{DOMAIN}")
        bucket = await eventually(lambda: _bucket_object(rig, ns), "Bucket object created")
        name = bucket["spec"]["name"]
        await _fill_versioned_bucket(s3, name, 20)
        before = await _versions(s3, name)
        await rig.api.delete(f"/api/v1/namespaces/{ns}")
        said = await eventually(lambda: [r for r in caplog.records if r.msg == "dry_run_would_empty_bucket"
                                         and getattr(r, "bucket", "") == name], "dry-run log line")
        assert len(said) == 1
        await asyncio.sleep(1.0)
        assert await _versions(s3, name) == before
        held = await _bucket_object(rig, ns)
        assert held["metadata"]["deletionTimestamp"] and EMPTY_BUCKET_FINALIZER in held["metadata"]["finalizers"]
        # DRY_RUN off (here: by hand): the finalizer goes and the namespace finishes deleting
        await merge_patch(rig.api, f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{ns}/buckets/preview-bucket",
                          {"metadata": {"finalizers": None}})

        async def namespace_gone() -> bool:
            return (await rig.api.get(f"/api/v1/namespaces/{ns}")).status_code == 404

        await eventually(namespace_gone, "namespace deletion completes", 60)


async def test_retain_annotation_keeps_the_data(janitor_rig: Rig, s3) -> None:
    rig = janitor_rig
    ns = await rig.namespace(host=f"keep-{uuid.uuid4().hex[:6]}.{DOMAIN}",
                             annotations={contract.ANN_RETAIN_BUCKET: "true"})
    bucket = await eventually(lambda: _bucket_object(rig, ns), "Bucket object created")
    assert bucket["metadata"]["annotations"]["services.k8s.aws/deletion-policy"] == "retain"
    assert EMPTY_BUCKET_FINALIZER not in (bucket["metadata"].get("finalizers") or [])
    name = bucket["spec"]["name"]
    await _fill_versioned_bucket(s3, name, 50)
    before = await _versions(s3, name)
    await rig.api.delete(f"/api/v1/namespaces/{ns}")

    async def namespace_gone() -> bool:
        return (await rig.api.get(f"/api/v1/namespaces/{ns}")).status_code == 404

    await eventually(namespace_gone, "namespace deletion completes", 60)
    assert await _versions(s3, name) == before


async def test_github_statuses_follow_the_preview_lifecycle(control_plane: ControlPlane) -> None:
    api = "https://api.github.com"
    repo, sha = "acme/shop", "c" * 40
    with respx.mock(assert_all_called=False) as gh:
        gh.route(host="127.0.0.1").pass_through()  # the real apiserver
        gh.post(f"{api}/repos/{repo}/deployments").respond(201, json={"id": 77})
        statuses = gh.post(f"{api}/repos/{repo}/deployments/77/statuses").respond(201, json={})
        async with make_rig(control_plane) as rig, httpx.AsyncClient() as http:
            reporter = DeploymentReporter(GitHubClient(api, StaticToken("ghp_x"), http), rig.kube,
                                          rig.controller.cache)
            rig.controller.extensions.append(reporter)
            task = asyncio.create_task(rig.controller._supervise(reporter))
            try:
                host = f"gh-{uuid.uuid4().hex[:6]}.{DOMAIN}"
                ns = await rig.namespace(host=host, annotations={ANN_REPO: repo, ANN_SHA: sha})
                await eventually(lambda: statuses.call_count >= 1, "success status posted")
                body = json.loads(statuses.calls[0].request.content)
                assert body["state"] == "success" and body["environment_url"] == f"https://{host}/"

                async def recorded() -> bool:
                    pe = await rig.preview(ns)
                    return (pe.get("status") or {}).get("github", {}).get("state") == "success"

                await eventually(recorded, "status.github recorded")
                await rig.api.delete(f"/api/v1/namespaces/{ns}")
                await eventually(lambda: statuses.call_count >= 2, "inactive status posted", 30)
                assert json.loads(statuses.calls[1].request.content)["state"] == "inactive"
                await asyncio.sleep(0.5)
                assert statuses.call_count == 2  # never twice for the same state
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


# --- previews of closed pull requests: the controller as Argo CD's backstop -------------------------------

GH = "https://api.github.com"
REPO, SHA = "acme/shop", "d" * 40


class PullRequestOnGitHub:
    """GitHub's answers for acme/shop#7: an ETag per version, 304 to a request that names the current one."""

    def __init__(self) -> None:
        self.state, self.version = "open", 1

    def close(self) -> None:
        self.state, self.version = "closed", self.version + 1

    def __call__(self, request: httpx.Request) -> httpx.Response:
        etag = f'"v{self.version}"'
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag, "x-ratelimit-remaining": "4999"})
        return httpx.Response(200, headers={"etag": etag, "x-ratelimit-remaining": "4998"}, json={
            "number": 7, "state": self.state, "merged": False, "head": {"sha": SHA}})


async def _ready(rig: Rig, ns: str) -> None:
    base = f"/apis/postgresql.cnpg.io/v1/namespaces/{ns}/clusters/preview-db"
    await eventually(lambda: _exists(rig, base), "CNPG Cluster created")
    await eventually(lambda: _bucket_object(rig, ns), "Bucket created")
    when = "2026-11-28T00:00:00Z"
    for path, status in [
        (base, {"phase": "Cluster in healthy state",
                "conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": "", "lastTransitionTime": when}]}),
        (f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{ns}/buckets/preview-bucket",
         {"conditions": [{"type": "ACK.ResourceSynced", "status": "True"}]}),
    ]:
        await merge_patch(rig.api, f"{path}/status", {"status": status})

    async def ready() -> bool:
        return (await rig.preview(ns) or {}).get("status", {}).get("phase") == "Ready"

    await eventually(ready, "preview Ready")


async def _exists(rig: Rig, path: str) -> bool:
    return (await rig.api.get(path)).status_code == 200


async def _reasons(rig: Rig, ns: str) -> list[str]:
    return [e["reason"] for e in sorted(await rig.events(ns), key=lambda e: e["metadata"]["creationTimestamp"])]


async def test_a_closed_pull_request_tears_the_preview_down(control_plane: ControlPlane, aws_env, s3) -> None:
    """GitHub says closed: hosts revoked at once, `inactive` posted, an Event; after the grace the namespace goes,
    with its database cluster and its bucket (emptied first)."""
    from controller.main import build_extensions

    pulls, host = PullRequestOnGitHub(), f"pr7-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    with respx.mock(assert_all_called=False) as gh:
        gh.route(host="127.0.0.1").pass_through()  # the real apiserver (the test's own client)
        pull = gh.get(f"{GH}/repos/{REPO}/pulls/7").mock(side_effect=pulls)
        gh.post(f"{GH}/repos/{REPO}/deployments").respond(201, json={"id": 77})
        statuses = gh.post(f"{GH}/repos/{REPO}/deployments/77/statuses").respond(201, json={})
        async with make_rig(
            control_plane, extensions=lambda c: build_extensions(c.settings, c.kube, c, None),
            github_token="ghp_test", pull_request_check_interval="1s", s3_endpoint_url=aws_env,
            bucket_default=True, database_default=True, database_destination_path="s3://backups/main",
        ) as rig:
            ns = await rig.namespace(host=host, labels={contract.LABEL_PR: "7"},
                                     annotations={ANN_REPO: REPO, ANN_SHA: SHA})
            await _ready(rig, ns)
            bucket = (await _bucket_object(rig, ns))["spec"]["name"]
            await _fill_versioned_bucket(s3, bucket, 30)
            await eventually(lambda: statuses.call_count >= 1 and pull.call_count >= 2, "success posted, PR polled")
            assert host in rig.allowlist

            pulls.close()
            await eventually(lambda: host not in rig.allowlist, "hosts revoked when the PR closed", 15)
            pe = (await rig.preview(ns))["status"]
            assert pe["phase"] == "Closed" and pe["closed"]["reason"] == "pull request acme/shop#7 was closed"
            await eventually(lambda: statuses.call_count >= 2, "inactive posted")
            assert [json.loads(c.request.content) for c in statuses.calls] == [
                {"state": "success", "description": f"Preview {ns} is ready", "auto_inactive": False,
                 "environment_url": f"https://{host}/"},
                {"state": "inactive", "description": f"Preview {ns} was torn down", "auto_inactive": False},
            ]
            closed_event = await eventually(
                lambda: _event_message(rig, ns, "Closed"), "Closed event")
            assert closed_event == f"preview {ns} is Closed: pull request acme/shop#7 was closed; hosts revoked"
            # Argo CD gets CLOSED_GRACE (10m) to prune it first: meanwhile nothing is deleted
            await asyncio.sleep(1.5)
            assert (await rig.api.get(f"/api/v1/namespaces/{ns}")).json()["status"]["phase"] == "Active"

            rig.clock.offset = timedelta(minutes=10, seconds=1)
            rig.controller.queue.add(ns)
            await eventually(lambda: _event_message(rig, ns, "Deleting"), "Deleting event")

            async def gone() -> bool:
                return (await rig.api.get(f"/api/v1/namespaces/{ns}")).status_code == 404

            await eventually(gone, "namespace deleted, with everything in it", 60)
            assert await _versions(s3, bucket) == 0  # emptied by the janitor before ACK could delete it
            assert await _bucket_object(rig, ns) is None
            assert not await _exists(rig, f"/apis/postgresql.cnpg.io/v1/namespaces/{ns}/clusters/preview-db")
            polls = pull.call_count
            await asyncio.sleep(1.5)
            assert pull.call_count == polls  # a deleted preview is not looked up any more
    # Exactly what was asked of GitHub: the first lookup unconditional, then always the last ETag.
    etags = [c.request.headers.get("if-none-match") for c in pull.calls]
    assert etags[0] is None and set(etags[1:]) <= {'"v1"', '"v2"'} and '"v2"' in etags
    assert etags[1:] == sorted(etags[1:])  # never back to an old version
    for c in pull.calls:
        assert c.request.method == "GET" and c.request.headers["authorization"] == "Bearer ghp_test"


async def _event_message(rig: Rig, ns: str, reason: str) -> str | None:
    return next((e["message"] for e in await rig.events(ns) if e["reason"] == reason), None)


async def test_a_preview_whose_argo_cd_application_is_gone_is_closed(control_plane: ControlPlane) -> None:
    from tests.support.argocd import APPS, application, install_application_crd

    await asyncio.to_thread(install_application_crd, control_plane)
    app = f"shop-pr-{uuid.uuid4().hex[:6]}"
    async with make_rig(control_plane, argocd_namespace="argocd", closed_grace="0s") as rig:
        r = await rig.api.post(APPS.format(namespace="argocd"), json=application(app))
        assert r.status_code == 201, r.text
        host = f"{app}.{DOMAIN}"
        ns = await rig.namespace(host=host, annotations={contract.ANN_ARGOCD_APP: f"argocd/{app}"})
        await eventually(lambda: host in rig.allowlist, "live while its Application exists")
        assert (await rig.api.delete(f"{APPS.format(namespace='argocd')}/{app}")).status_code == 200
        await eventually(lambda: host not in rig.allowlist, "revoked once the Application is gone")

        async def deleting() -> bool:
            r = await rig.api.get(f"/api/v1/namespaces/{ns}")
            return r.status_code == 404 or r.json()["status"]["phase"] == "Terminating"

        await eventually(deleting, "namespace deleted (CLOSED_GRACE 0s)", 30)
