"""Teardown against the real control plane: buckets emptied through S3 (moto server), GitHub statuses."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import httpx
import pytest
import respx

from controller import names
from controller.buckets import BucketJanitor
from controller.deployments import ANN_REPO, ANN_SHA, DeploymentReporter
from controller.github import GitHubClient, StaticToken
from controller.resources import EMPTY_BUCKET_FINALIZER
from tests.support.controller_rig import DOMAIN, Rig, eventually, make_rig
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


async def test_retain_annotation_keeps_the_data(janitor_rig: Rig, s3) -> None:
    rig = janitor_rig
    ns = await rig.namespace(host=f"keep-{uuid.uuid4().hex[:6]}.{DOMAIN}",
                             annotations={names.ANN_RETAIN_BUCKET: "true"})
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
