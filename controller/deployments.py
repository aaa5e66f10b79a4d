"""GitHub deployment statuses for previews: success with the URL when Ready, failure, inactive on teardown.

What has been posted is recorded in the PreviewEnvironment's `status.github`,
so a restarted controller (or a second reconcile) never posts the same state
twice.  GitHub calls run in their own workers: a slow or rate-limited GitHub
never delays reconciling any preview.

Inputs (Argo CD's pull-request generator can set them through
managedNamespaceMetadata): annotations `preview-broker.io/github-repo`
(owner/name) and `preview-broker.io/github-sha` (the PR's head SHA).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from controller.github import GitHubClient, GitHubError
from foundation import contract
from kube.client import ApiError, KubeError
from kube.queue import WorkQueue, drain_forever

log = logging.getLogger("preview_broker.deployments")

ANN_REPO = contract.ANN_GITHUB_REPO
ANN_SHA = contract.ANN_GITHUB_SHA
DESIRED = {"Ready": "success", "Failed": "failure", "Expired": "inactive", "Closed": "inactive",
           "Terminating": "inactive"}


@dataclass(frozen=True, slots=True)
class Step:
    state: str
    create: bool  # create a new deployment first (new preview or new head SHA)
    deployment_id: int | None
    repo: str
    sha: str


def next_step(
    *, phase: str, repo: str, sha: str, recorded: dict[str, Any] | None
) -> Step | None:
    """The one GitHub call (if any) that brings GitHub in line with the preview's phase (pure)."""
    desired = DESIRED.get(phase)
    recorded = recorded or {}
    if desired is None:
        return None
    if desired == "inactive":
        if not recorded.get("deploymentId") or recorded.get("state") == "inactive":
            return None  # nothing was announced, or it is already withdrawn
        return Step("inactive", False, int(recorded["deploymentId"]), recorded["repository"], recorded.get("sha", ""))
    if not repo or not sha:
        return None
    same_deployment = recorded.get("repository") == repo and recorded.get("sha") == sha and recorded.get("deploymentId")
    if same_deployment and recorded.get("state") == desired:
        return None
    if same_deployment:
        return Step(desired, False, int(recorded["deploymentId"]), repo, sha)
    return Step(desired, True, None, repo, sha)


class DeploymentReporter:
    def __init__(self, client: GitHubClient, kube: Any, cache: Any, *, url_scheme: str = "https", workers: int = 2):
        self.client = client
        self.kube = kube
        self.cache = cache
        self.url_scheme = url_scheme
        self.workers = workers
        # GitHubClient already retried within the call; this backoff is for what outlasted that.
        self.queue = WorkQueue(retry_base=30.0, retry_cap=900.0)

    def notify(self, name: str) -> None:
        self.queue.add(name)

    async def run(self) -> None:
        await asyncio.gather(*(
            drain_forever(self.queue, self.report, job="github_report", expected=(GitHubError, KubeError), log=log)
            for _ in range(self.workers)
        ))

    async def report(self, name: str) -> None:
        from controller.reconciler import PE_PATH, cached_preview

        pe = self.cache.previews.get(name)
        if pe is None:
            return
        ns = self.cache.namespaces.get(name)
        annotations = ns.annotations if ns is not None else {}

        def step_for(status: dict[str, Any]) -> Step | None:
            return next_step(phase=status.get("phase", ""), repo=annotations.get(ANN_REPO, ""),
                             sha=annotations.get(ANN_SHA, ""), recorded=status.get("github"))

        if step_for(pe.get("status") or {}) is None:
            return
        # A post to GitHub cannot be taken back, and the cache can lag behind our own last write
        # (a watch event older than that write replaces it): ask the apiserver before posting.
        try:
            pe = cached_preview(await self.kube.get(f"{PE_PATH}/{name}"))
        except ApiError as e:
            if e.not_found:
                return
            raise
        status = pe.get("status") or {}
        step = step_for(status)
        if step is None:
            return
        hosts = status.get("allowedHosts") or []
        url = f"{self.url_scheme}://{hosts[0]}/" if hosts and step.state == "success" else ""
        deployment_id = step.deployment_id
        if step.create:
            deployment_id = await self.client.create_deployment(
                step.repo, step.sha, name, f"Preview environment {name}"
            )
        description = {
            "success": f"Preview {name} is ready",
            "failure": status.get("message") or f"Preview {name} failed to provision",
            "inactive": f"Preview {name} was torn down",
        }[step.state]
        await self.client.create_status(step.repo, deployment_id, step.state, environment_url=url,
                                        description=description)
        recorded = {"repository": step.repo, "sha": step.sha, "deploymentId": deployment_id, "state": step.state}
        updated = await self.kube.merge_patch(f"{PE_PATH}/{name}/status", {"status": {"github": recorded}})
        self.cache.previews[name] = cached_preview(updated)
        log.info("github_deployment_status", extra={"namespace": name, **recorded})
