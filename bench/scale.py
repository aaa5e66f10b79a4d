#!/usr/bin/env python3
"""The controller and the broker at scale, against the real control plane.

    .venv/bin/python bench/scale.py [--namespaces 10000] [--changes 100] [--report]

1. Creates N preview namespaces, each with a host annotation and an Ingress.
2. Starts `preview-broker controller` and times its first full sync: until its
   published allowlist holds N hosts (this run also writes N PreviewEnvironments).
3. Restarts it and times the sync again (the steady-state restart case: lists only).
4. Starts `preview-broker broker` (kubernetes source) and times it to /readyz.
5. Measures propagation over --changes new namespaces, one at a time: create -> the
   broker accepts the host, then delete -> the broker refuses it (asked through
   /oauth2/start every 2 ms, as a browser would ask); prints p50/p99.
6. Prints both processes' resident memory (VmRSS).
With --report, writes its section of docs/benchmarks.md and the distribution plot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.report import (  # noqa: E402
    DOCS,
    SUMMARY_HEAD,
    distribution_plot,
    machine,
    percentile,
    summary_row,
    update_section,
)
from foundation import contract  # noqa: E402
from tests.support.controlplane import cleanup, install_crds, start_control_plane  # noqa: E402
from tests.support.procs import Proc, free_port, http_ok, wait_until  # noqa: E402

DOMAIN = "preview.example.com"


class Results(list):
    """Printed as they come, so a run cut short still reports what it measured."""

    def append(self, item: tuple[str, str]) -> None:
        super().append(item)
        print(f"  {item[0]:58} {item[1]}", flush=True)


def rss_mib(proc: Proc, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or at its peak so far (VmHWM)."""
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metrics(port: int, *names: str) -> list[float]:
    """Several figures from one scrape (each scrape counts every preview: ask rarely)."""
    values = dict.fromkeys(names, -1.0)
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return list(values.values())


def preview_namespace(name: str, host: str) -> dict:
    """A namespace the way Argo CD would create it for a pull request, claiming `host`."""
    return {"metadata": {"name": name, "labels": {contract.LABEL_PREVIEW: "true"},
                         "annotations": {contract.ANN_HOST: host}}}


async def create_namespaces(cp, n: int, prefix: str) -> None:
    async with httpx.AsyncClient(base_url=cp.api_url, headers={"Authorization": f"Bearer {cp.admin_token}"},
                                 verify=ssl.create_default_context(cafile=str(cp.ca_file)), timeout=60) as api:
        sem = asyncio.Semaphore(32)
        done = 0

        async def one(i: int) -> None:
            nonlocal done
            name, host = f"{prefix}-{i}", f"{prefix}-{i}.{DOMAIN}"
            async with sem:
                (await api.post("/api/v1/namespaces", json=preview_namespace(name, host))).raise_for_status()
                (await api.post(f"/apis/networking.k8s.io/v1/namespaces/{name}/ingresses", json={
                    "metadata": {"name": "web"}, "spec": {"rules": [{"host": f"api-{host}"}]}})).raise_for_status()
            done += 1
            if done % 500 == 0:
                print(f"\r  created {done}/{n}", end="", file=sys.stderr, flush=True)

        await asyncio.gather(*(one(i) for i in range(n)))
        print(file=sys.stderr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--namespaces", type=int, default=10000)
    p.add_argument("--changes", type=int, default=100)
    p.add_argument("--report", action="store_true", help="write its section of benchmarks.md and a plot")
    p.add_argument("--docs", type=Path, default=DOCS, help="where benchmarks.md and the plot go (default docs/)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pb-scale-"))
    print(f"scale: {a.namespaces} preview namespaces (each with one Ingress), {a.changes} changes", flush=True)
    print(f"scale: starting the control plane (logs in {work})", file=sys.stderr)
    cp = start_control_plane(work / "cp")
    procs: list[Proc] = []
    results = Results()
    try:
        install_crds(cp)
        t0 = time.monotonic()
        asyncio.run(create_namespaces(cp, a.namespaces, "s"))
        results.append(("create namespaces + ingresses", f"{time.monotonic() - t0:.1f} s"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
        env.update({"KUBECONFIG": str(cp.kubeconfig), "PREVIEW_BROKER_PREVIEW_DOMAINS": DOMAIN,
                    "PREVIEW_BROKER_PUBLIC_URL": f"https://auth.{DOMAIN}",
                    "PREVIEW_BROKER_LEADER_ELECTION": "false", "PREVIEW_BROKER_LOG_LEVEL": "WARNING"})
        expected = 2 * a.namespaces  # annotation host + ingress host
        for label in ("controller first sync (writes every PreviewEnvironment)", "controller restart sync"):
            mport = free_port()
            ctrl = Proc("controller", [sys.executable, "-m", "preview_broker", "controller", "--metrics-port",
                                       str(mport)], work / "controller.log", env=env).start()
            procs.append(ctrl)
            t0 = time.monotonic()
            # Synced = every namespace reconciled once and the whole allowlist published.
            def synced() -> bool:
                time.sleep(0.15)  # with wait_until's 0.1 s: about four scrapes a second
                reconciles, hosts = metrics(mport, "preview_broker_reconcile_duration_seconds_count",
                                            "preview_broker_allowlist_hosts")
                return reconciles >= a.namespaces and hosts >= expected

            wait_until(synced, "controller synced", 1800, ctrl)
            results.append((label, f"{time.monotonic() - t0:.1f} s"))
            results.append((f"controller RSS after {label.split(' (')[0]}", f"{rss_mib(ctrl):.0f} MiB"))
            if label.startswith("controller first"):
                ctrl.stop()
                procs.remove(ctrl)
        bport = free_port()
        benv = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
        benv.update({
            "KUBECONFIG": str(cp.kubeconfig), "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
            "PREVIEW_BROKER_PREVIEW_DOMAINS": DOMAIN, "PREVIEW_BROKER_ALLOWLIST_SOURCE": "kubernetes",
            "PREVIEW_BROKER_PROVIDER": "github", "PREVIEW_BROKER_CLIENT_ID": "c", "PREVIEW_BROKER_CLIENT_SECRET": "s",
            "PREVIEW_BROKER_SECRET_KEYS": secrets.token_urlsafe(32), "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "*",
            "PREVIEW_BROKER_LOG_LEVEL": "WARNING"})
        t0 = time.monotonic()
        broker = Proc("broker", [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1", "--port",
                                 str(bport), "--metrics-port", "0"], work / "broker.log", env=benv).start()
        procs.append(broker)
        wait_until(http_ok(f"http://127.0.0.1:{bport}/readyz"), "broker ready", 600, broker)
        results.append(("broker start to ready (first list)", f"{time.monotonic() - t0:.1f} s"))

        # One client, kept alive: a fresh httpx.get per question builds a TLS context each
        # time (tens of ms here), which would be measured as propagation.
        poll = httpx.Client(base_url=f"http://127.0.0.1:{bport}")

        def accepted(host: str) -> bool:
            r = poll.get("/oauth2/start", params={"rd": f"https://{host}/cb"})
            return r.status_code == 302  # on to the preview host to begin a login: the host is live

        def timed(until, what: str) -> float:
            t0 = time.monotonic()
            while not until():
                if time.monotonic() - t0 > 60:
                    raise SystemExit(f"scale: {what} not seen within 60 s")
                time.sleep(0.002)
            return (time.monotonic() - t0) * 1000

        created, deleted = [], []
        with cp.client() as api:
            for i in range(a.changes):
                name, host = f"chg-{i}", f"chg-{i}.{DOMAIN}"
                api.post("/api/v1/namespaces", json=preview_namespace(name, host)).raise_for_status()
                created.append(timed(lambda: accepted(host), f"{host} accepted"))
                api.delete(f"/api/v1/namespaces/{name}").raise_for_status()
                deleted.append(timed(lambda: not accepted(host), f"{host} refused"))
        results.append(("propagation p50 (create -> broker accepts)", f"{statistics.median(created):.0f} ms"))
        results.append(("propagation p99 (create -> broker accepts)", f"{percentile(created, 99):.0f} ms"))
        results.append(("propagation p50 (delete -> broker refuses)", f"{statistics.median(deleted):.0f} ms"))
        results.append(("propagation p99 (delete -> broker refuses)", f"{percentile(deleted, 99):.0f} ms"))
        poll.close()
        results.append(("broker RSS (end)", f"{rss_mib(broker):.0f} MiB"))
        results.append(("broker peak RSS", f"{rss_mib(broker, 'VmHWM'):.0f} MiB"))
        results.append(("controller RSS (end)", f"{rss_mib(procs[0]):.0f} MiB"))
        results.append(("controller peak RSS (restarted process)", f"{rss_mib(procs[0], 'VmHWM'):.0f} MiB"))
    finally:
        for proc in procs:
            proc.stop()
        cleanup(cp)
    print(f"scale: {a.namespaces} preview namespaces (each with one Ingress), {a.changes} changes: done")
    if a.report:
        series = {"create -> accepted": created, "delete -> refused": deleted}
        plot = distribution_plot(series, a.docs / "bench-scale-propagation.png",
                                 f"allowlist propagation with {a.namespaces:,} previews live", target_ms=250)
        figures = "\n".join(f"| {label} | {value} |" for label, value in results)
        table = "\n".join([SUMMARY_HEAD, *(summary_row(label, ms) for label, ms in series.items())])
        update_section(a.docs, "scale", f"""## At {a.namespaces:,} preview namespaces (real control plane)

Command: `bench/scale.py --namespaces {a.namespaces} --changes {a.changes}` on {machine()}. Each
namespace has a host annotation and an Ingress ({2 * a.namespaces:,} hosts); the controller and the broker
run as `preview-broker` processes; targets: restart sync < 10 s, propagation p99 < 250 ms, controller
RSS < 150 MiB, broker RSS < 120 MiB.

| measure | figure |
|---|---:|
{figures}

Propagation over {a.changes} changes made one at a time with {a.namespaces:,} previews live:

{table}

![{plot.stem}]({plot.name})
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
