"""The controller under the failures real clusters have: apiserver restarts, compaction, leader loss, churn."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import uuid

import httpx
import pytest

from tests.support.controller_rig import DOMAIN, Rig, eventually, make_rig
from tests.support.controlplane import ControlPlane, cleanup, install_crds, start_control_plane
from tests.support.procs import Proc

pytestmark = [pytest.mark.cluster]


async def test_apiserver_restart_mid_watch_converges_without_restarting_controller(
    rig: Rig, control_plane: ControlPlane
) -> None:
    before = f"pre-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    await rig.namespace(host=before)
    await eventually(lambda: before in rig.allowlist, "host before restart")
    await asyncio.to_thread(control_plane.restart_apiserver, 1.0)
    after = f"post-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    await rig.namespace(host=after)
    await eventually(lambda: after in rig.allowlist, "host created after the restart", 60)
    assert before in rig.allowlist
    restarts = rig.controller.metrics.watch_restarts.labels("namespaces", "error")._value.get()
    assert restarts >= 1  # the watch really broke and was re-established


def _etcd_compact(cp: ControlPlane) -> int:
    key = base64.b64encode(b"/registry").decode()
    rev = int(httpx.post(f"{cp.etcd_url}/v3/kv/range", json={"key": key}).json()["header"]["revision"])
    r = httpx.post(f"{cp.etcd_url}/v3/kv/compaction", json={"revision": rev, "physical": True})
    r.raise_for_status()
    return rev


async def test_compaction_forces_410_and_relist_converges(rig: Rig, control_plane: ControlPlane) -> None:
    first = f"cmp-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    await rig.namespace(host=first)
    await eventually(lambda: first in rig.allowlist, "first host")
    # Stop the apiserver, move etcd's history on and compact it, so the watchers come
    # back with a resourceVersion that no longer exists: the apiserver answers 410 Gone.
    api = control_plane.procs["kube-apiserver"]
    await asyncio.to_thread(api.stop)
    for i in range(5):
        key = base64.b64encode(f"/unrelated/{uuid.uuid4().hex}".encode()).decode()
        httpx.post(f"{control_plane.etcd_url}/v3/kv/put", json={"key": key, "value": key}).raise_for_status()
    await asyncio.to_thread(_etcd_compact, control_plane)
    await asyncio.to_thread(api.start)
    await asyncio.to_thread(control_plane._wait_ready, api)
    second = f"cmp2-{uuid.uuid4().hex[:6]}.{DOMAIN}"
    await rig.namespace(host=second)
    await eventually(lambda: second in rig.allowlist, "host after compaction", 60)
    assert first in rig.allowlist
    gone = sum(
        rig.controller.metrics.watch_restarts.labels(w, "gone")._value.get()
        for w in ("namespaces", "previewenvironments", "ingresses")
    )
    assert gone >= 1  # at least one watch was answered 410 Gone and relisted


def _controller_proc(cp: ControlPlane, identity: str, tmp_path) -> Proc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    env.update(
        {
            "KUBECONFIG": str(cp.kubeconfig),
            "PREVIEW_BROKER_PREVIEW_DOMAINS": DOMAIN,
            "PREVIEW_BROKER_KUBE_NAMESPACE": "default",
            "PREVIEW_BROKER_LEASE_NAME": "leader-test",
            "PREVIEW_BROKER_LEASE_DURATION": "5",
            "PREVIEW_BROKER_IDENTITY": identity,
        }
    )
    return Proc(identity, [sys.executable, "-m", "broker.cli", "controller", "--metrics-port", "0"],
                tmp_path / f"{identity}.log", env=env)


async def test_two_controllers_one_leader_and_takeover(control_plane: ControlPlane, tmp_path) -> None:
    a = _controller_proc(control_plane, "ctrl-a", tmp_path).start()
    b = _controller_proc(control_plane, "ctrl-b", tmp_path).start()
    procs = {"ctrl-a": a, "ctrl-b": b}
    try:
        with control_plane.client() as c:
            def holder() -> str:
                r = c.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/leader-test")
                return r.json()["spec"].get("holderIdentity", "") if r.status_code == 200 else ""

            first = await eventually(holder, "a leader", 30)
            assert first in procs
            follower = next(n for n in procs if n != first)
            await asyncio.sleep(3)
            assert holder() == first  # the follower does not steal a renewed lease
            assert "caches_synced" not in procs[follower].log_path.read_text()  # followers do not run the loop
            procs[first].popen.send_signal(signal.SIGKILL)
            procs[first].popen.wait()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await eventually(lambda: holder() == follower, "takeover", 20)
            took = loop.time() - killed_at
            assert took <= 5 + 2 + 1  # lease duration + one retry period + slack
            await eventually(lambda: "caches_synced" in procs[follower].log_path.read_text(), "new leader running", 20)
    finally:
        a.stop()
        b.stop()


@pytest.fixture
async def own_rig(tmp_path):
    """A control plane of its own: 2,000 namespaces would keep the shared one's namespace controller busy."""
    cp = await asyncio.to_thread(start_control_plane, tmp_path / "cp")
    try:
        await asyncio.to_thread(install_crds, cp)
        async with make_rig(cp) as r:
            yield r
    finally:
        await asyncio.to_thread(cleanup, cp)


async def test_churn_of_2000_namespaces_ends_with_allowlist_equal_to_truth(own_rig: Rig) -> None:
    rig = own_rig
    run = uuid.uuid4().hex[:6]
    total, concurrency = 2000, 16
    sem = asyncio.Semaphore(concurrency)
    created: list[tuple[str, str]] = []

    async def create(i: int) -> None:
        name, host = f"churn-{run}-{i}", f"c{i}-{run}.{DOMAIN}"
        async with sem:
            await rig.namespace(name=name, host=host, labels={"churn": run})
        created.append((name, host))

    async def delete(name: str) -> None:
        async with sem:
            r = await rig.api.delete(f"/api/v1/namespaces/{name}")
            assert r.status_code in (200, 404)

    # Create everything while deleting every third namespace as soon as it exists.
    deleted: set[str] = set()

    async def deleter() -> None:
        while len(created) < total or len(deleted) < total // 3:
            candidates = [n for n, _ in created if int(n.rsplit("-", 1)[1]) % 3 == 0 and n not in deleted]
            for name in candidates:
                deleted.add(name)
                await delete(name)
            if len(created) >= total and not candidates:
                break
            await asyncio.sleep(0.01)

    await asyncio.gather(asyncio.gather(*(create(i) for i in range(total))), deleter())
    truth = {host for name, host in created if name not in deleted}
    assert len(truth) == total - len(deleted)

    def mine() -> set[str]:
        return {h for h in rig.allowlist.hosts() if h.endswith(f"-{run}.{DOMAIN}")}

    await eventually(lambda: mine() == truth, f"allowlist == truth ({len(truth)} hosts)", 180)
    await asyncio.sleep(2)  # and it stays that way: nothing stale comes back
    assert mine() == truth
