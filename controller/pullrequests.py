"""Ask GitHub whether each preview's pull request is still open: the backstop for closed PRs.

Argo CD normally prunes a closed pull request's preview; when it does not (a
namespace made with CreateNamespace=true is never deleted, argo-cd#7875), the
controller finds the close itself.  Every preview namespace annotated with its
repository (`preview-broker.io/github-repo`) and numbered (`preview-broker.io/pr`)
is looked up every PULL_REQUEST_CHECK_INTERVAL with the GitHub credentials the
controller already holds (an App needs "Pull requests: read").

* Conditional requests: the ETag of the last answer goes out as If-None-Match; an
  unchanged pull request costs a 304, which GitHub does not count against the
  rate limit.
* Rate limits: GitHubClient waits out a limit GitHub reports; on top of that the
  checks pause until the reset when fewer than GITHUB_RATE_LIMIT_RESERVE requests
  remain, leaving the rest for deployment statuses, and go out at most one per
  `min_gap` (0.1 s: 600 a minute, under GitHub's secondary limit of 900 points a
  minute), however many previews there are.
* What GitHub said goes into the controller's cache and the namespace is queued:
  the reconcile decides (controller/lifetime.py); nothing here writes to Kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from controller.github import GitHubClient, GitHubError
from foundation import contract
from kube.queue import WorkQueue, drain_forever

log = logging.getLogger("preview_broker.pullrequests")

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def target(annotations: dict[str, str] | Any, pr_number: str) -> tuple[str, str] | None:
    """(owner/name, number) of a namespace's pull request, or None when it names none (or garbage)."""
    repo = annotations.get(contract.ANN_GITHUB_REPO, "").strip()
    number = pr_number.strip()
    if not _REPO.match(repo) or not number.isdigit() or not number.isascii():
        return None
    return repo, str(int(number))


class PullRequestChecker:
    def __init__(
        self,
        client: GitHubClient,
        cache: Any,
        wake: Callable[[str], None],
        *,
        interval: float,
        reserve: int = 200,
        metrics: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        workers: int = 2,
        min_gap: float = 0.1,
    ) -> None:
        self.client = client
        self.cache = cache
        self.wake = wake
        self.interval = interval
        self.reserve = reserve
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.workers = workers
        self.min_gap = min_gap
        self._next_slot = 0.0  # self.clock() time before which no lookup goes out
        self.queue = WorkQueue(retry_base=30.0, retry_cap=max(30.0, interval))
        self.etags: dict[str, str] = {}
        self._scheduled: set[str] = set()

    def notify(self, name: str) -> None:
        """Called after every reconcile: start checking a namespace the first time it qualifies."""
        if name in self._scheduled:
            return
        ns = self.cache.namespaces.get(name)
        if ns is not None and not ns.deleting and target(ns.annotations, ns.pull_request):
            self._scheduled.add(name)
            self.queue.add(name)

    async def run(self) -> None:
        await asyncio.gather(*(
            drain_forever(self.queue, self.check, job="pull_request_check", expected=(GitHubError,), log=log)
            for _ in range(self.workers)
        ))

    async def check(self, name: str) -> None:
        ns = self.cache.namespaces.get(name)
        where = target(ns.annotations, ns.pull_request) if ns is not None and not ns.deleting else None
        if where is None:  # gone, deleting, or no longer names a pull request: stop checking it
            self._scheduled.discard(name)
            self.etags.pop(name, None)
            self.cache.pull_requests.pop(name, None)
            return
        repo, number = where
        known = self.cache.pull_requests.get(name)
        if known is not None and (known.repo, known.number) != (repo, number):
            known = None  # the annotations now name another pull request
        await self._spare_the_budget()
        try:
            pr, etag = await self.client.pull_request(repo, number, self.etags.get(name, "") if known else "")
        except GitHubError:
            self._count("error")
            raise
        self.queue.add_after(name, self.interval)
        if pr is None:
            self._count("not_modified")
            return
        self._count(pr.state)
        self.etags[name] = etag
        if pr != known:
            self.cache.pull_requests[name] = pr
            log.info("pull_request_state", extra={"namespace": name, "pull_request": pr.ref, "state": pr.state,
                                                  "merged": pr.merged, "head_sha": pr.head_sha})
            self.wake(name)

    async def _spare_the_budget(self) -> None:
        now = self.clock()
        wait, self._next_slot = self._next_slot - now, max(now, self._next_slot) + self.min_gap
        if wait > 0:
            await self.sleep(wait)
        rate = self.client.rate
        if rate.remaining is None or rate.remaining > self.reserve:
            return
        wait = rate.reset - self.clock() + 1
        if wait > 0:
            log.warning("pull_request_checks_paused", extra={"remaining": rate.remaining, "reserve": self.reserve,
                                                              "wait_s": round(wait)})
            await self.sleep(wait)
            rate.remaining = None  # the next answer tells again

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.pull_request_checks.labels(result).inc()
