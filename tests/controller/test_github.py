"""GitHub deployment statuses: exact requests (respx), App auth, rate limits, retries, idempotence."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from joserfc import jwt
from joserfc.jwk import RSAKey

from controller.deployments import DeploymentReporter, next_step
from controller.github import AppInstallationToken, GitHubClient, GitHubError, StaticToken
from controller.policy import NamespaceView

API = "https://api.github.com"
REPO = "acme/shop"
SHA = "a" * 40
KEY = RSAKey.generate_key(2048)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(http: httpx.AsyncClient, tokens=None, sleep=None, clock=lambda: 1_800_000_000.0) -> GitHubClient:
    return GitHubClient(API, tokens or StaticToken("ghp_test"), http, sleep=sleep or Sleeps(), clock=clock)


@pytest.mark.parametrize(
    ("phase", "recorded", "expected"),
    [
        ("Provisioning", None, None),
        ("Ready", None, ("success", True, None)),
        ("Ready", {"repository": REPO, "sha": SHA, "deploymentId": 7, "state": "success"}, None),
        ("Failed", {"repository": REPO, "sha": SHA, "deploymentId": 7, "state": "success"}, ("failure", False, 7)),
        ("Ready", {"repository": REPO, "sha": "b" * 40, "deploymentId": 7, "state": "success"}, ("success", True, None)),
        ("Terminating", {"repository": REPO, "sha": SHA, "deploymentId": 7, "state": "success"}, ("inactive", False, 7)),
        ("Terminating", {"repository": REPO, "sha": SHA, "deploymentId": 7, "state": "inactive"}, None),
        ("Terminating", None, None),
        ("Expired", {"repository": REPO, "sha": SHA, "deploymentId": 7, "state": "failure"}, ("inactive", False, 7)),
    ],
)
def test_next_step(phase, recorded, expected) -> None:
    step = next_step(phase=phase, repo=REPO, sha=SHA, recorded=recorded)
    assert (None if step is None else (step.state, step.create, step.deployment_id)) == expected


def test_next_step_needs_repo_and_sha() -> None:
    assert next_step(phase="Ready", repo="", sha=SHA, recorded=None) is None
    assert next_step(phase="Ready", repo=REPO, sha="", recorded=None) is None


async def test_deployment_and_status_requests_are_exact() -> None:
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            dep = gh.post(f"{API}/repos/{REPO}/deployments").respond(201, json={"id": 42})
            st = gh.post(f"{API}/repos/{REPO}/deployments/42/statuses").respond(201, json={"id": 1})
            c = client(http)
            assert await c.create_deployment(REPO, SHA, "pr-7", "Preview environment pr-7") == 42
            await c.create_status(REPO, 42, "success", environment_url="https://pr-7.preview.example.com/",
                                  description="Preview pr-7 is ready")
        req = dep.calls[0].request
        assert req.headers["authorization"] == "Bearer ghp_test"
        assert req.headers["accept"] == "application/vnd.github+json"
        assert req.headers["x-github-api-version"] == "2022-11-28"
        assert json.loads(req.content) == {
            "ref": SHA, "environment": "pr-7", "description": "Preview environment pr-7", "auto_merge": False,
            "required_contexts": [], "transient_environment": True, "production_environment": False,
        }
        assert json.loads(st.calls[0].request.content) == {
            "state": "success", "description": "Preview pr-7 is ready", "auto_inactive": False,
            "environment_url": "https://pr-7.preview.example.com/",
        }


async def test_app_auth_jwt_then_installation_token_cached_and_refreshed() -> None:
    now = [1_800_000_000.0]
    tokens = AppInstallationToken("12345", "678", KEY.as_pem(private=True).decode(), clock=lambda: now[0])
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            issued = gh.post(f"{API}/app/installations/678/access_tokens").mock(side_effect=[
                httpx.Response(201, json={"token": "ghs_one", "expires_at": "2027-01-15T09:00:00Z"}),
                httpx.Response(201, json={"token": "ghs_two", "expires_at": "2030-01-15T09:00:00Z"}),
            ])
            users = gh.get(f"{API}/repos/{REPO}").respond(200, json={})
            c = client(http, tokens=tokens, clock=lambda: now[0])
            await c.call("GET", f"/repos/{REPO}")
            await c.call("GET", f"/repos/{REPO}")
            assert issued.call_count == 1  # cached
            now[0] = 1_800_000_000.0 + 10**8  # far past expiry
            await c.call("GET", f"/repos/{REPO}")
            assert issued.call_count == 2
        app_auth = issued.calls[0].request.headers["authorization"]
        assert app_auth.startswith("Bearer ")
        claims = jwt.decode(app_auth.removeprefix("Bearer "), KEY).claims
        assert claims["iss"] == "12345" and claims["exp"] - claims["iat"] == 600
        assert [r.request.headers["authorization"] for r in users.calls] == [
            "Bearer ghs_one", "Bearer ghs_one", "Bearer ghs_two"]


@pytest.mark.parametrize(
    ("first", "wait"),
    [
        (httpx.Response(403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000120"},
                        json={"message": "API rate limit exceeded"}), 121.0),
        (httpx.Response(429, headers={"retry-after": "7"}), 7.0),
        (httpx.Response(403, headers={"retry-after": "30"}, json={"message": "secondary rate limit"}), 30.0),
        (httpx.Response(502, text="bad gateway"), 1.0),
    ],
    ids=["primary-limit", "429-retry-after", "secondary-limit", "5xx"],
)
async def test_rate_limits_and_server_errors_wait_then_retry(first, wait) -> None:
    sleeps = Sleeps()
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            route = gh.post(f"{API}/repos/{REPO}/deployments").mock(
                side_effect=[first, httpx.Response(201, json={"id": 9})])
            assert await client(http, sleep=sleeps).create_deployment(REPO, SHA, "pr-1", "d") == 9
    assert route.call_count == 2 and sleeps.waits == [wait]


async def test_client_errors_are_not_retried_and_persistent_failures_give_up() -> None:
    sleeps = Sleeps()
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            gh.post(f"{API}/repos/{REPO}/deployments").respond(422, json={"message": "No ref found"})
            with pytest.raises(GitHubError) as err:
                await client(http, sleep=sleeps).create_deployment(REPO, SHA, "pr-1", "d")
            assert err.value.status == 422 and sleeps.waits == []
        with respx.mock() as gh:
            route = gh.post(f"{API}/repos/{REPO}/deployments").mock(side_effect=httpx.ConnectError("down"))
            with pytest.raises(GitHubError, match="gave up after 6 attempts"):
                await client(http, sleep=sleeps).create_deployment(REPO, SHA, "pr-1", "d")
            assert route.call_count == 6 and sleeps.waits == [1.0, 2.0, 4.0, 8.0, 16.0]


class FakeKube:
    def __init__(self, cache) -> None:
        self.cache = cache
        self.patches: list[tuple[str, dict]] = []

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        name = path.split("/")[-2]
        pe = self.cache.previews[name]
        return {**pe, "status": {**pe.get("status", {}), **patch["status"]}}


class Cache:
    def __init__(self, phase: str, sha: str = SHA) -> None:
        from datetime import UTC, datetime

        self.namespaces = {"pr-7": NamespaceView("pr-7", "u", datetime.now(UTC), annotations={
            "preview-broker.io/github-repo": REPO, "preview-broker.io/github-sha": sha})}
        self.previews = {"pr-7": {"metadata": {"name": "pr-7"},
                                  "status": {"phase": phase, "allowedHosts": ["pr-7.preview.example.com"],
                                             "message": "database not ready after 30m"}}}


async def test_reporter_posts_once_per_state_and_survives_restart() -> None:
    cache = Cache("Ready")
    kube = FakeKube(cache)
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            dep = gh.post(f"{API}/repos/{REPO}/deployments").respond(201, json={"id": 42})
            st = gh.post(f"{API}/repos/{REPO}/deployments/42/statuses").respond(201, json={})
            reporter = DeploymentReporter(client(http), kube, cache)
            await reporter.report("pr-7")
            await reporter.report("pr-7")
            restarted = DeploymentReporter(client(http), kube, cache)
            await restarted.report("pr-7")
            assert dep.call_count == 1 and st.call_count == 1
            assert cache.previews["pr-7"]["status"]["github"] == {
                "repository": REPO, "sha": SHA, "deploymentId": 42, "state": "success"}
            cache.previews["pr-7"]["status"]["phase"] = "Terminating"
            await reporter.report("pr-7")
            assert json.loads(st.calls[-1].request.content)["state"] == "inactive"
            assert st.call_count == 2


async def test_reporter_failure_carries_the_reason() -> None:
    cache = Cache("Failed")
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            gh.post(f"{API}/repos/{REPO}/deployments").respond(201, json={"id": 5})
            st = gh.post(f"{API}/repos/{REPO}/deployments/5/statuses").respond(201, json={})
            await DeploymentReporter(client(http), FakeKube(cache), cache).report("pr-7")
    body = json.loads(st.calls[0].request.content)
    assert body["state"] == "failure" and body["description"] == "database not ready after 30m"
    assert "environment_url" not in body


async def test_enterprise_base_url() -> None:
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            gh.post("https://ghe.example.com/api/v3/repos/acme/shop/deployments").respond(201, json={"id": 1})
            c = GitHubClient("https://ghe.example.com/api/v3/", StaticToken("t"), http, sleep=Sleeps())
            assert await c.create_deployment(REPO, SHA, "pr-1", "d") == 1
