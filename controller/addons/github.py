"""The GitHub add-on: deployment statuses for previews (controller/deployments.py) and, with
PULL_REQUEST_CHECK_INTERVAL, pull-request close checks (controller/pullrequests.py).  Side jobs
only: no objects in the cluster; what was posted is recorded in `status.github`."""

from __future__ import annotations

from typing import Any

from controller.addons.base import AddOn
from controller.settings import ControllerSettings


class GitHub(AddOn):
    name = "github"

    def enabled(self, settings: ControllerSettings) -> bool:
        return settings.github_enabled

    def extensions(self, settings: ControllerSettings, kube: Any, controller: Any, fence: Any) -> list[Any]:
        import httpx

        from controller.deployments import DeploymentReporter
        from controller.github import AppInstallationToken, GitHubClient, StaticToken
        from controller.pullrequests import PullRequestChecker
        from foundation.trust import client_verify

        tokens = (
            AppInstallationToken(settings.github_app_id, settings.github_app_installation_id,
                                 open(settings.github_app_private_key_file).read())
            if settings.github_app_id else StaticToken(settings.github_token)
        )
        connections = httpx.AsyncHTTPTransport(verify=client_verify(settings.extra_ca_certs))
        http = httpx.AsyncClient(timeout=30, transport=controller.metrics.upstream.transport("github", connections))
        client = GitHubClient(settings.github_api_url, tokens, http, fence=fence)
        extensions: list[Any] = [DeploymentReporter(client, kube, controller.cache,
                                                    url_scheme=settings.environment_url_scheme)]
        if settings.pull_request_check_interval > 0:
            extensions.append(PullRequestChecker(
                client, controller.cache, controller.queue.add, interval=settings.pull_request_check_interval,
                reserve=settings.github_rate_limit_reserve, metrics=controller.metrics))
        return extensions


ADDON = GitHub()
