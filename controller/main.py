"""`preview-broker controller`: connect, win the lease, run the controller until leadership is lost."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from controller.health import Health, serve_probes
from controller.metrics import ControllerMetrics
from controller.reconciler import Controller
from controller.settings import ControllerSettings
from foundation import logs
from kube.client import Fence, Kube, KubeError, NoConfig
from kube.leader import LeaderElector

log = logging.getLogger("preview_broker.controller")


async def _first(jobs: dict[str, Awaitable[Any]]) -> str:
    """Run `jobs` until one ends; cancel (and await) the rest; re-raise what the first one raised."""
    tasks = {asyncio.ensure_future(job): name for name, job in jobs.items()}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(iter(done))
    if not first.cancelled() and first.exception() is not None:
        raise first.exception()  # type: ignore[misc]
    return tasks[first]


async def run_controller(
    kube: Kube,
    settings: ControllerSettings,
    *,
    metrics: ControllerMetrics,
    health: Health,
    stop: asyncio.Event,
    extensions: Callable[[ControllerSettings, Kube, Controller, Fence | None], list[Any]] | None = None,
) -> int:
    """Wait for the lease (when elected), then run the controller until `stop` or the lease is lost.

    Returns the exit code: 0 after `stop`, 1 after losing the lease (Kubernetes restarts the
    process as a follower with empty caches).  Nothing is reconciled before the lease is held,
    and every write goes through the lease's fence (kube/leader.py).
    """
    build = extensions or build_extensions
    if not settings.leader_election:
        controller = Controller(kube, settings, metrics=metrics, freeze_after_first_pass=True)
        controller.extensions = build(settings, kube, controller, None)
        health.watches = lambda: controller.watchers
        await _first({"controller": controller.run(), "stop": stop.wait()})
        return 0
    elector = LeaderElector(
        kube, settings.kube_namespace, settings.lease_name, settings.identity,
        lease_duration=settings.lease_duration, renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
    )
    if await _first({"acquire": elector.acquire(), "stop": stop.wait()}) == "stop":
        return 0
    metrics.leader.set(1)
    fenced = kube.fenced(elector.remaining)
    controller = Controller(fenced, settings, metrics=metrics, freeze_after_first_pass=True)
    controller.extensions = build(settings, fenced, controller, elector.remaining)
    health.watches = lambda: controller.watchers
    try:
        ended = await _first({"controller": controller.run(), "lease": elector.hold(), "stop": stop.wait()})
    finally:
        metrics.leader.set(0)
        health.watches = lambda: ()
        # Stopped or crashed while still holding it: hand over now rather than after a lease duration.
        # (After losing it, release() touches nothing: the lease may be another replica's.)
        await elector.release()
    if ended == "lease":
        log.error("exiting_after_leadership_loss", extra={"identity": settings.identity})
        return 1
    return 0


async def _main(settings: ControllerSettings, metrics: ControllerMetrics, health: Health) -> int:
    try:
        kube = await Kube.connect(user_agent=f"preview-broker-controller/{settings.identity}")
    except NoConfig as exc:
        print(f"preview-broker: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    heartbeat = asyncio.create_task(health.heartbeat())
    try:
        return await run_controller(kube, settings, metrics=metrics, health=health, stop=stop)
    except KubeError as exc:
        log.error("controller_failed", extra={"error": str(exc)[:300]})
        return 1
    finally:
        heartbeat.cancel()
        await kube.close()


def build_extensions(settings: ControllerSettings, kube: Kube, controller: Controller, fence: Fence | None) -> list:
    """Side jobs with their own queues, the add-ons': bucket emptying, GitHub statuses, pull-request checks."""
    from controller.addons import ADDONS

    extensions: list = []
    for addon in ADDONS:  # off: its objects are not watched, so there is nothing to do
        if addon.enabled(settings):
            extensions += addon.extensions(settings, kube, controller, fence)
    return extensions


def run(settings: ControllerSettings, *, metrics_port: int) -> int:
    logs.setup(settings.log_level, settings.log_format)
    metrics = ControllerMetrics()
    health = Health()
    if metrics_port:
        serve_probes(metrics_port, metrics.registry, health)
    return asyncio.run(_main(settings, metrics, health))
