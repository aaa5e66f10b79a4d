"""The controller on the real control plane, with the broker's watch beside it: the cluster tests' rig.

`make_rig` runs a Controller (injected clock) and a KubernetesAllowlist (what a
broker replica runs) against a control plane, plus a plain admin client for the
test's own reads and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from broker.kube_allowlist import KubernetesAllowlist
from controller.reconciler import PE_PATH, Controller
from controller.settings import ControllerSettings
from foundation import contract
from kube.client import Kube
from tests.support.controlplane import ControlPlane

DOMAIN = "preview.example.com"


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Rig:
    cp: ControlPlane
    kube: Kube
    controller: Controller
    allowlist: KubernetesAllowlist
    clock: Clock
    api: httpx.AsyncClient

    async def namespace(self, *, host: str | None = None, annotations: dict[str, str] | None = None,
                        labels: dict[str, str] | None = None, name: str | None = None) -> str:
        name = name or f"pr-{uuid.uuid4().hex[:8]}"
        ann = dict(annotations or {})
        if host:
            ann[contract.ANN_HOST] = host
        body = {"metadata": {"name": name, "labels": {contract.LABEL_PREVIEW: "true", **(labels or {})},
                             "annotations": ann}}
        r = await self.api.post("/api/v1/namespaces", json=body)
        assert r.status_code == 201, r.text
        return name

    async def newer_namespace(self, than: str, **kwargs: Any) -> str:
        """A namespace whose creationTimestamp is strictly after `than`'s. The timestamp has
        one-second resolution and equal timestamps fall back to name order, so a claim test that
        creates both within one second would pass or fail on the random names."""
        meta = (await self.api.get(f"/api/v1/namespaces/{than}")).json()["metadata"]
        older = datetime.fromisoformat(meta["creationTimestamp"])
        wait = (older + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait + 0.05)
        name = await self.namespace(**kwargs)
        created = (await self.api.get(f"/api/v1/namespaces/{name}")).json()["metadata"]["creationTimestamp"]
        assert datetime.fromisoformat(created) > older, (created, meta["creationTimestamp"])
        return name

    async def preview(self, name: str) -> dict[str, Any] | None:
        r = await self.api.get(f"{PE_PATH}/{name}")
        return r.json() if r.status_code == 200 else None

    async def events(self, ns: str) -> list[dict[str, Any]]:
        return (await self.api.get(f"/api/v1/namespaces/{ns}/events")).json()["items"]


async def eventually(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def controller_settings(**kw: Any) -> ControllerSettings:
    """The rig's control plane serves the CloudNativePG and ACK CRDs: both add-ons are on unless a test
    turns one off."""
    return ControllerSettings.model_validate({"preview_domains": [DOMAIN], "public_url": f"https://auth.{DOMAIN}",
                                              "identity": "test", "database_enabled": True, "bucket_enabled": True,
                                              **kw})


@contextlib.asynccontextmanager
async def make_rig(
    control_plane: ControlPlane, *, extensions: Callable[[Controller], list[Any]] | None = None, **overrides: Any
) -> AsyncIterator[Rig]:
    """`extensions(controller)`: side jobs (bucket janitor, GitHub) to run with it, as main wires them."""
    kube = await Kube.from_kubeconfig(str(control_plane.kubeconfig))
    broker_kube = await Kube.from_kubeconfig(str(control_plane.kubeconfig))
    clock = Clock()
    controller = Controller(kube, controller_settings(**overrides), clock=clock)
    if extensions is not None:
        controller.extensions = extensions(controller)
    task = asyncio.create_task(controller.run())
    allowlist = KubernetesAllowlist(kube=broker_kube)
    await allowlist.start()
    api = httpx.AsyncClient(
        base_url=control_plane.api_url,
        headers={"Authorization": f"Bearer {control_plane.admin_token}"},
        verify=ssl.create_default_context(cafile=str(control_plane.ca_file)),
    )
    try:
        await eventually(lambda: controller.synced and allowlist.ready, "controller and allowlist synced")
        yield Rig(control_plane, kube, controller, allowlist, clock, api)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await allowlist.stop()
        await broker_kube.close()
        await kube.close()
        await api.aclose()


async def merge_patch(api: httpx.AsyncClient, path: str, patch: dict[str, Any]) -> dict[str, Any]:
    r = await api.patch(path, json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    return r.json()
