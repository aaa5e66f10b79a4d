#!/usr/bin/env python3
"""Time from namespace creation to acceptance by a broker's kubernetes allowlist.

    .venv/bin/python bench/propagation.py [--count 50] [--report]

Starts the real control plane (scripts/testbin), runs the controller and the
broker's allowlist watch in this process, then creates --count preview
namespaces one after another and measures, for each, the time from the create
call returning to the host being accepted; then the same for deletion
(delete call -> host refused).  Prints medians and percentiles; with --report,
writes its section of docs/benchmarks.md and the distribution plot.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.report import (  # noqa: E402
    DOCS,
    SUMMARY_HEAD,
    distribution_plot,
    machine,
    summary_row,
    update_section,
)
from broker.kube_allowlist import KubernetesAllowlist  # noqa: E402
from controller.reconciler import Controller  # noqa: E402
from controller.settings import ControllerSettings  # noqa: E402
from foundation import contract  # noqa: E402
from kube.client import Kube  # noqa: E402
from tests.support.controlplane import cleanup, install_crds, start_control_plane  # noqa: E402

DOMAIN = "preview.example.com"


async def measure(cp, count: int) -> tuple[list[float], list[float]]:
    kube = await Kube.from_kubeconfig(str(cp.kubeconfig))
    broker_kube = await Kube.from_kubeconfig(str(cp.kubeconfig))
    controller = Controller(kube, ControllerSettings(preview_domains=[DOMAIN], public_url=f"https://auth.{DOMAIN}",
                                                      identity="bench"))
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
            body = {"metadata": {"name": name, "labels": {contract.LABEL_PREVIEW: "true"},
                                 "annotations": {contract.ANN_HOST: host}}}
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
    parser.add_argument("--report", action="store_true", help="write its section of benchmarks.md and a plot")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where benchmarks.md and the plot go (default docs/)")
    args = parser.parse_args()
    print("starting the control plane ...", file=sys.stderr)
    cp = start_control_plane()
    try:
        install_crds(cp)
        created, removed = asyncio.run(measure(cp, args.count))
    finally:
        cleanup(cp)
    series = {"create -> accepted": [v * 1000 for v in created], "delete -> refused": [v * 1000 for v in removed]}
    table = "\n".join([SUMMARY_HEAD, *(summary_row(label, ms) for label, ms in series.items())])
    print(f"namespace -> broker propagation over {args.count} namespaces\n{table}")
    if args.report:
        plot = distribution_plot(series, args.docs / "bench-propagation.png",
                                 f"namespace -> broker allowlist, {args.count} changes each way", target_ms=250)
        update_section(args.docs, "propagation", f"""## Allowlist propagation (real control plane)

Command: `bench/propagation.py --count {args.count}` on {machine()}: create a preview namespace and time
until a broker's `kubernetes` allowlist (its watch, in the same process as the controller) accepts its
host; delete it and time until the host is refused. One change at a time.

{table}

![{plot.stem}]({plot.name})
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
