"""A small GitHub REST client for deployments and pull requests: App or token auth, rate limits, retries.

Authentication: a GitHub App (preferred: a JWT signed with the App's private
key buys an installation token, renewed five minutes before it expires) or a
plain token.  Every call retries server errors and network failures with
capped exponential backoff, and waits out rate limits as GitHub asks
(`Retry-After`, or `X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`).
The last rate-limit headers seen are kept (`rate`), so callers that can wait
(pull-request checks) leave the rest of the budget to those that cannot.
Pull requests are read with conditional requests (`If-None-Match`): a 304
costs nothing against the rate limit.  Writes (deployments, statuses) first
ask the leader-election fence, like every write to Kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from controller.lifetime import PullRequest

log = logging.getLogger("preview_broker.github")

API_VERSION = "2022-11-28"
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class GitHubError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TokenSource(Protocol):
    async def token(self, client: GitHubClient) -> str: ...


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, client: GitHubClient) -> str:
        return self._token


class AppInstallationToken:
    """JWT (RS256, iss=App id, 9 minutes) -> installation access token (1 hour), cached."""

    REFRESH_BEFORE = 300.0

    def __init__(self, app_id: str, installation_id: str, private_key_pem: str, clock: Clock = time.time) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self._key = RSAKey.import_key(private_key_pem)
        self._clock = clock
        self._cached: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    def app_jwt(self) -> str:
        now = int(self._clock())
        # iat 60 s in the past tolerates clock drift, as GitHub recommends.
        return jwt.encode({"alg": "RS256"}, {"iat": now - 60, "exp": now + 540, "iss": self.app_id}, self._key)

    async def token(self, client: GitHubClient) -> str:
        async with self._lock:
            if self._cached and self._cached[1] - self.REFRESH_BEFORE > self._clock():
                return self._cached[0]
            body = await client.call(
                "POST",
                f"/app/installations/{self.installation_id}/access_tokens",
                authorization=f"Bearer {self.app_jwt()}",
                fenced=False,  # buys a token; writes nothing
            )
            expires = _parse_github_time(body.get("expires_at", "")) or self._clock() + 3600
            self._cached = (body["token"], expires)
            return body["token"]


def _parse_github_time(text: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class RateLimit:
    """The rate-limit headers of the last answer (None until one carried them)."""

    def __init__(self) -> None:
        self.remaining: int | None = None
        self.reset: float = 0.0  # epoch seconds

    def update(self, resp: httpx.Response) -> None:
        try:
            remaining = int(resp.headers["x-ratelimit-remaining"])
            reset = float(resp.headers.get("x-ratelimit-reset", "0"))
        except (KeyError, ValueError):
            return
        self.remaining, self.reset = remaining, reset


class GitHubClient:
    def __init__(
        self,
        api_url: str,
        tokens: TokenSource,
        http: httpx.AsyncClient,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        max_attempts: int = 6,
        max_wait: float = 900.0,
        fence: Callable[[], float] | None = None,
    ) -> None:
        self.api = api_url.rstrip("/")
        self.tokens = tokens
        self.http = http
        self.sleep = sleep
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.fence = fence
        self.rate = RateLimit()

    async def call(
        self, method: str, path: str, json: Any = None, *, authorization: str | None = None, fenced: bool = True
    ) -> Any:
        resp = await self.send(method, path, json, authorization=authorization, fenced=fenced)
        return resp.json() if resp.content else {}

    async def send(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        authorization: str | None = None,
        headers: dict[str, str] | None = None,
        fenced: bool = True,
    ) -> httpx.Response:
        """The answer (2xx, or 304 to a conditional request), after retries; GitHubError otherwise."""
        delay = 1.0
        for attempt in range(1, self.max_attempts + 1):
            if fenced and method != "GET" and self.fence is not None:
                self.fence()  # NotLeader: a replica that lost the lease posts nothing
            auth = authorization or f"Bearer {await self.tokens.token(self)}"
            sent = {"Authorization": auth, "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION, "User-Agent": "preview-broker", **(headers or {})}
            try:
                resp = await self.http.request(method, self.api + path, json=json, headers=sent)
            except httpx.HTTPError as exc:
                wait, why = delay, f"network error: {type(exc).__name__}"
            else:
                self.rate.update(resp)
                if resp.status_code < 300 or resp.status_code == 304:
                    return resp
                wait, why = self._retry_after(resp, delay)
                if wait is None:
                    raise GitHubError(f"{method} {path}: {resp.status_code} {resp.text[:200]}", resp.status_code)
            if attempt == self.max_attempts:
                raise GitHubError(f"{method} {path}: gave up after {attempt} attempts ({why})")
            wait = min(wait, self.max_wait)
            log.warning("github_retry", extra={"path": path, "why": why, "wait_s": round(wait, 1), "attempt": attempt})
            await self.sleep(wait)
            delay = min(delay * 2, 60.0)
        raise AssertionError("unreachable")

    def _retry_after(self, resp: httpx.Response, delay: float) -> tuple[float | None, str]:
        """How long to wait before retrying this answer, or None when retrying cannot help."""
        if "retry-after" in resp.headers and resp.status_code in (403, 429, 503):
            try:
                return float(resp.headers["retry-after"]), f"{resp.status_code} Retry-After"
            except ValueError:
                return delay, f"{resp.status_code} Retry-After"
        if resp.status_code in (403, 429) and resp.headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(resp.headers.get("x-ratelimit-reset", "0"))
            except ValueError:
                reset = 0.0
            return max(1.0, reset - self.clock() + 1), "rate limit exhausted"
        if resp.status_code == 429:
            return delay, "429"
        if resp.status_code >= 500:
            return delay, f"{resp.status_code}"
        return None, str(resp.status_code)

    # --- deployments -----------------------------------------------------------------------
    async def create_deployment(self, repo: str, sha: str, environment: str, description: str) -> int:
        body = await self.call("POST", f"/repos/{repo}/deployments", {
            "ref": sha,
            "environment": environment,
            "description": description,
            "auto_merge": False,  # a preview must never merge anything
            "required_contexts": [],  # the PR's checks gate merging, not previews
            "transient_environment": True,
            "production_environment": False,
        })
        return int(body["id"])

    async def create_status(
        self, repo: str, deployment_id: int, state: str, *, environment_url: str = "", description: str = ""
    ) -> None:
        body: dict[str, Any] = {"state": state, "description": description[:140], "auto_inactive": False}
        if environment_url:
            body["environment_url"] = environment_url
        await self.call("POST", f"/repos/{repo}/deployments/{deployment_id}/statuses", body)

    # --- pull requests ----------------------------------------------------------------------
    async def pull_request(self, repo: str, number: str, etag: str = "") -> tuple[PullRequest | None, str]:
        """(the pull request, its ETag); (None, etag) when unchanged since `etag` (a free 304)."""
        resp = await self.send("GET", f"/repos/{repo}/pulls/{number}",
                               headers={"If-None-Match": etag} if etag else None)
        if resp.status_code == 304:
            return None, etag
        try:
            body = resp.json()
        except ValueError:
            body = None
        head = body.get("head") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("state") not in ("open", "closed") or not isinstance(head, dict):
            # Never a guess: a preview is torn down only on a clear "closed".
            raise GitHubError(f"GET /repos/{repo}/pulls/{number}: unexpected answer {resp.text[:100]!r}")
        sha = head.get("sha")
        pr = PullRequest(repo, str(number), body["state"], body.get("merged") is True,
                         sha if isinstance(sha, str) else "")
        return pr, resp.headers.get("etag", "")
