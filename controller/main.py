"""`preview-broker controller`: connect, win the lease, run the controller until leadership is lost."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from broker import logs
from controller.kube import Kube, KubeError, NoConfig
from controller.leader import LeaderElector
from controller.metrics import ControllerMetrics
from controller.reconciler import Controller
from controller.settings import ControllerSettings

log = logging.getLogger("preview_broker.controller")


async def _main(settings: ControllerSettings, metrics: ControllerMetrics) -> int:
    try:
        kube = await Kube.connect()
    except NoConfig as exc:
        print(f"preview-broker: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    elector = None
    try:
        if settings.leader_election:
            elector = LeaderElector(
                kube, settings.kube_namespace, settings.lease_name, settings.identity, settings.lease_duration
            )
            acquiring = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                acquiring.cancel()
                await asyncio.gather(acquiring, return_exceptions=True)  # done with the client before it closes
                return 0
            metrics.leader.set(1)
        controller = Controller(kube, settings, metrics=metrics, freeze_after_first_pass=True)
        controller.extensions = build_extensions(settings, kube, controller)
        tasks = {asyncio.create_task(controller.run(), name="controller"), asyncio.create_task(stop.wait())}
        if elector is not None:
            tasks.add(asyncio.create_task(elector.hold(), name="lease"))
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            if t.get_name() == "controller" and t.exception():
                raise t.exception()  # type: ignore[misc]
        if elector is not None and not elector.is_leader and not stop.is_set():
            log.error("exiting_after_leadership_loss")
            return 1  # let Kubernetes restart us as a follower with clean caches
        return 0
    except KubeError as exc:
        log.error("controller_failed", extra={"error": str(exc)[:300]})
        return 1
    finally:
        if elector is not None and elector.is_leader:
            await elector.release()
        await kube.close()


def build_extensions(settings: ControllerSettings, kube: Kube, controller: Controller) -> list:
    from controller.buckets import BucketJanitor

    extensions: list = [BucketJanitor(kube, controller.cache, endpoint_url=settings.s3_endpoint_url,
                                      region=settings.s3_region)]
    if settings.github_enabled:
        import httpx

        from controller.deployments import DeploymentReporter
        from controller.github import AppInstallationToken, GitHubClient, StaticToken

        tokens = (
            AppInstallationToken(settings.github_app_id, settings.github_app_installation_id,
                                 open(settings.github_app_private_key_file).read())
            if settings.github_app_id else StaticToken(settings.github_token)
        )
        client = GitHubClient(settings.github_api_url, tokens, httpx.AsyncClient(timeout=30))
        extensions.append(DeploymentReporter(client, kube, controller.cache,
                                             url_scheme=settings.environment_url_scheme))
    return extensions


def run(settings: ControllerSettings, *, metrics_port: int) -> int:
    logs.setup(settings.log_level)
    metrics = ControllerMetrics()
    if metrics_port:
        start_http_server(metrics_port, addr="0.0.0.0", registry=metrics.registry)
    return asyncio.run(_main(settings, metrics))
