"""The controller under the failures real clusters have: apiserver restarts, compaction, leader loss, churn."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import time
import uuid

import httpx
import pytest

from tests.support.apiproxy import ApiProxy
from tests.support.controller_rig import DOMAIN, Rig, eventually, make_rig
from tests.support.controlplane import (
    ControlPlane,
    cleanup,
    install_crds,
    start_control_plane,
)
from tests.support.procs import Proc, free_port, wait_until

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


async def test_a_failing_reconcile_is_retried_with_growing_delays_and_others_go_on(
    rig: Rig, control_plane: ControlPlane, caplog
) -> None:
    """A real apiserver refuses one preview's writes (a ValidatingAdmissionPolicy): that key backs off
    0.5, 1, 2, 4 s...; other previews are served meanwhile; once allowed it converges and the backoff resets."""
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": "deny-stuck"},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{
                           "apiGroups": ["preview-broker.io"], "apiVersions": ["*"], "operations": ["CREATE"],
                           "resources": ["previewenvironments"]}]},
                       "validations": [{"expression": "!object.metadata.name.startsWith('stuck-')",
                                        "message": "refused by the test"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": "deny-stuck"}, "spec": {"policyName": "deny-stuck", "validationActions": ["Deny"]}}
    base = "/apis/admissionregistration.k8s.io/v1"
    for path, body in [(f"{base}/validatingadmissionpolicies", policy),
                       (f"{base}/validatingadmissionpolicybindings", binding)]:
        assert (await rig.api.post(path, json=body)).status_code == 201
    try:
        async def enforced() -> bool:  # policies take effect a moment after they are created
            probe = {"apiVersion": "preview-broker.io/v1alpha1", "kind": "PreviewEnvironment",
                     "metadata": {"name": "stuck-probe"}}
            r = await rig.api.post("/apis/preview-broker.io/v1alpha1/previewenvironments?dryRun=All", json=probe)
            return r.status_code in (400, 403, 422)

        await eventually(enforced, "admission policy enforced", 30)
        stuck = await rig.namespace(name=f"stuck-{uuid.uuid4().hex[:6]}", host=f"stuck-{uuid.uuid4().hex[:6]}.{DOMAIN}")
        fine_host = f"fine-{uuid.uuid4().hex[:6]}.{DOMAIN}"

        def failures() -> list:
            return [r for r in caplog.records if r.getMessage() == "reconcile_failed" and r.namespace == stuck]

        await eventually(lambda: len(failures()) >= 3, "three failed reconciles", 30)
        await rig.namespace(host=fine_host)
        await eventually(lambda: fine_host in rig.allowlist, "another preview is not held up", 10)
        await eventually(lambda: len(failures()) >= 5, "five failed reconciles", 30)
        records = failures()[:5]
        assert [r.retry_in for r in records] == [0.5, 1.0, 2.0, 4.0, 8.0]
        assert [r.attempt for r in records] == [1, 2, 3, 4, 5]
        assert "refused by the test" in records[0].error
        gaps = [b.created - a.created for a, b in zip(records, records[1:])]
        assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, [0.5, 1.0, 2.0, 4.0])), gaps
    finally:
        await rig.api.delete(f"{base}/validatingadmissionpolicybindings/deny-stuck")
        await rig.api.delete(f"{base}/validatingadmissionpolicies/deny-stuck")
    rig.controller.queue.add(stuck)  # or wait out the 16 s backoff

    async def converged() -> bool:
        return ((await rig.preview(stuck)) or {}).get("status", {}).get("phase") == "Ready"

    await eventually(converged, "converges once allowed", 30)
    # the status is written mid-reconcile; its success (which resets the backoff) follows its Events
    await eventually(lambda: rig.controller.queue.failures(stuck) == 0, "backoff reset by the success", 10)


async def test_healthz_fails_while_the_watches_are_dead_and_recovers(rig: Rig, control_plane: ControlPlane) -> None:
    from controller.health import Health

    health = Health(watch_dead_after=3)
    health.watches = lambda: rig.controller.watchers
    beat = asyncio.create_task(health.heartbeat(interval=0.2))
    try:
        await asyncio.sleep(0.3)
        assert health.problems() == []
        api = control_plane.procs["kube-apiserver"]
        await asyncio.to_thread(api.stop)
        try:
            def namespaces_dead() -> bool:
                return any(p.startswith("watch namespaces failing for") for p in health.problems())

            await eventually(namespaces_dead, "the namespaces watch dead after 3 s of failures", 30)
        finally:
            await asyncio.to_thread(api.start)
            await asyncio.to_thread(control_plane._wait_ready, api)
        await eventually(lambda: health.problems() == [], "healthy again once the watches reconnect", 60)
    finally:
        beat.cancel()


async def test_a_controller_process_serves_healthz_and_metrics_on_its_metrics_port(
    control_plane: ControlPlane, tmp_path
) -> None:
    port = free_port()
    proc = _controller_proc(control_plane, "probe-a", tmp_path, lease_name="probe-test")
    proc.argv[-1] = str(port)
    proc.start()
    try:
        def leading() -> bool:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            return "preview_broker_leader 1.0" in text and "preview_broker_queue_depth 0.0" in text

        await asyncio.to_thread(wait_until, leading, "leader with queue metrics", 30, proc)
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert (r.status_code, r.text) == (200, "ok\n")
    finally:
        proc.stop()


def _controller_proc(cp: ControlPlane, identity: str, tmp_path, kubeconfig=None, **settings: str) -> Proc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    env.update(
        {
            "KUBECONFIG": str(kubeconfig or cp.kubeconfig),
            "PREVIEW_BROKER_PREVIEW_DOMAINS": DOMAIN,
            "PREVIEW_BROKER_PUBLIC_URL": f"https://auth.{DOMAIN}",
            "PREVIEW_BROKER_KUBE_NAMESPACE": "default",
            "PREVIEW_BROKER_LEASE_NAME": "leader-test",
            "PREVIEW_BROKER_LEASE_DURATION": "5",
            "PREVIEW_BROKER_IDENTITY": identity,
            **{f"PREVIEW_BROKER_{k.upper()}": v for k, v in settings.items()},
        }
    )
    return Proc(identity, [sys.executable, "-m", "preview_broker", "controller", "--metrics-port", "0"],
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


LEASE_S, RETRY_S = 6, 0.8  # renew deadline 4 s (2/3 of the lease, as client-go's 15/10/2)


async def test_a_paused_leader_is_replaced_within_the_lease_and_writes_nothing_after_it_resumes(
    control_plane: ControlPlane, tmp_path
) -> None:
    """SIGSTOP the leader: the follower takes over within the lease duration; SIGCONT it: every request
    it sends after that goes through its own recording proxy, and none of them is a write."""
    proxies = {name: await ApiProxy(control_plane).start() for name in ("stop-a", "stop-b")}
    procs = {
        name: _controller_proc(control_plane, name, tmp_path, proxy.write_kubeconfig(tmp_path / f"{name}.kubeconfig"),
                               lease_name="sigstop-test", lease_duration=str(LEASE_S), retry_period=str(RETRY_S)).start()
        for name, proxy in proxies.items()
    }
    api = control_plane.client()

    def holder() -> str:
        r = api.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/sigstop-test")
        return r.json()["spec"].get("holderIdentity", "") if r.status_code == 200 else ""

    def namespace(host: str) -> str:
        name = f"stop-{uuid.uuid4().hex[:6]}"
        api.post("/api/v1/namespaces", json={"metadata": {
            "name": name, "labels": {"preview-broker.io/preview": "true"},
            "annotations": {"preview-broker.io/host": host}}}).raise_for_status()
        return name

    def preview(name: str) -> dict | None:
        r = api.get(f"/apis/preview-broker.io/v1alpha1/previewenvironments/{name}")
        return r.json() if r.status_code == 200 else None

    try:
        leader = await eventually(holder, "a leader", 30)
        follower = next(n for n in procs if n != leader)
        first = namespace(f"a-{uuid.uuid4().hex[:6]}.{DOMAIN}")
        await eventually(lambda: (preview(first) or {}).get("status", {}).get("phase") == "Ready", "leader at work", 30)
        assert proxies[leader].writes(), "the leader wrote through its proxy"

        procs[leader].popen.send_signal(signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        # Work the paused leader will find queued when it wakes: a new preview, a changed one.
        second = namespace(f"b-{uuid.uuid4().hex[:6]}.{DOMAIN}")
        api.patch(f"/api/v1/namespaces/{first}", json={"metadata": {"annotations": {
            "preview-broker.io/ttl": "1h"}}}, headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
        await eventually(lambda: holder() == follower, "the follower takes over", 3 * LEASE_S)
        took = loop.time() - stopped_at
        # The leader renewed at most a retry period before the pause; the follower takes over one lease
        # duration after it saw that renewal, at its next poll (retry period, jittered by up to 20 %).
        assert took <= LEASE_S + 2 * RETRY_S * 1.2 + 1.0, took
        await eventually(lambda: (preview(second) or {}).get("status", {}).get("phase") == "Ready",
                         "the new leader reconciles", 30)
        await eventually(lambda: (preview(first) or {}).get("status", {}).get("expiresAt"), "the change followed", 30)
        versions = {n: preview(n)["metadata"]["resourceVersion"] for n in (first, second)}

        resumed_at = time.monotonic()
        procs[leader].popen.send_signal(signal.SIGCONT)
        code = await asyncio.to_thread(procs[leader].popen.wait, 30)
        assert code == 1  # exits to come back as a follower with fresh caches
        log = procs[leader].log_path.read_text()
        assert '"leader_lost"' in log and '"exiting_after_leadership_loss"' in log
        assert proxies[leader].writes(since=resumed_at) == []  # not one POST, PUT, PATCH or DELETE
        assert {n: preview(n)["metadata"]["resourceVersion"] for n in (first, second)} == versions
        assert holder() == follower
    finally:
        for proc in procs.values():
            if proc.alive():
                proc.popen.send_signal(signal.SIGCONT)
            proc.stop()
        for proxy in proxies.values():
            await proxy.stop()
        api.close()


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
