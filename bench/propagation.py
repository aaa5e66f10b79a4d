#!/usr/bin/env python3
"""Time from namespace creation to acceptance by a broker's kubernetes allowlist.

    .venv/bin/python bench/propagation.py [--count 50]

Starts the real control plane (scripts/testbin), runs the controller and the
broker's allowlist watch in this process, then creates --count preview
namespaces one after another and measures, for each, the time from the create
call returning to the host being accepted; then the same for deletion
(delete call -> host refused).  Prints medians and percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from broker.kube_allowlist import KubernetesAllowlist  # noqa: E402
from controller import names  # noqa: E402
from controller.kube import Kube  # noqa: E402
from controller.reconciler import Controller  # noqa: E402
from controller.settings import ControllerSettings  # noqa: E402
from tests.support.controlplane import cleanup, install_crds, start_control_plane  # noqa: E402

DOMAIN = "preview.example.com"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def measure(cp, count: int) -> tuple[list[float], list[float]]:
    kube = await Kube.from_kubeconfig(str(cp.kubeconfig))
    broker_kube = await Kube.from_kubeconfig(str(cp.kubeconfig))
    controller = Controller(kube, ControllerSettings(preview_domains=[DOMAIN], identity="bench"))
    task = asyncio.create_task(controller.run())
    allowlist = KubernetesAllowlist(kube=broker_kube)
    await allowlist.start()
    api = httpx.AsyncClient(base_url=cp.api_url, headers={"Authorization": f"Bearer {cp.admin_token}"},
                            verify=ssl.create_default_context(cafile=str(cp.ca_file)))
    while not (controller.synced and allowlist.ready):
        await asyncio.sleep(0.01)
    created, removed = [], []
    try:
        # One unmeasured round first: right after CRD installation the apiserver answers
        # new watches "429 storage is (re)initializing" for a moment.
        for i in range(-1, count):
            name, host = f"bench-{uuid.uuid4().hex[:8]}", f"b{i}-{uuid.uuid4().hex[:6]}.{DOMAIN}"
            body = {"metadata": {"name": name, "labels": {names.LABEL_PREVIEW: "true"},
                                 "annotations": {names.ANN_HOST: host}}}
            (await api.post("/api/v1/namespaces", json=body)).raise_for_status()
            t0 = time.perf_counter()
            while host not in allowlist:
                await asyncio.sleep(0.0005)
            if i >= 0:
                created.append(time.perf_counter() - t0)
            (await api.delete(f"/api/v1/namespaces/{name}")).raise_for_status()
            t0 = time.perf_counter()
            while host in allowlist:
                await asyncio.sleep(0.0005)
            if i >= 0:
                removed.append(time.perf_counter() - t0)
            print(f"\r  {i + 1}/{count}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await allowlist.stop()
        await kube.close()
        await broker_kube.close()
        await api.aclose()
    return created, removed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50, help="namespaces to create and delete (default 50)")
    args = parser.parse_args()
    print("starting the control plane ...", file=sys.stderr)
    cp = start_control_plane()
    try:
        install_crds(cp)
        created, removed = asyncio.run(measure(cp, args.count))
    finally:
        cleanup(cp)
    print(f"namespace -> broker propagation over {args.count} namespaces (ms)")
    print(f"{'':24}{'median':>10}{'p90':>10}{'p99':>10}{'max':>10}")
    for label, values in (("create -> accepted", created), ("delete -> refused", removed)):
        ms = [v * 1000 for v in values]
        print(f"{label:24}{statistics.median(ms):10.1f}{pct(ms, 90):10.1f}{pct(ms, 99):10.1f}{max(ms):10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
