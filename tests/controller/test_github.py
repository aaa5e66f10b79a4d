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
from controller.github import (
    AppInstallationToken,
    GitHubClient,
    GitHubError,
    StaticToken,
)
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

        self.stored: dict[str, dict[str, Any]] = {}  # the apiserver's copy, where it differs from the cache

    async def get(self, path: str) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        return self.stored.get(name) or self.cache.previews[name]

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


async def test_a_cache_behind_the_reporters_own_write_posts_nothing_twice() -> None:
    """A watch event older than the reporter's status write can put the old status back into the
    cache: the apiserver's copy, asked before any post, still says it was posted."""
    cache = Cache("Ready")
    kube = FakeKube(cache)
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            dep = gh.post(f"{API}/repos/{REPO}/deployments").respond(201, json={"id": 42})
            st = gh.post(f"{API}/repos/{REPO}/deployments/42/statuses").respond(201, json={})
            reporter = DeploymentReporter(client(http), kube, cache)
            await reporter.report("pr-7")
            kube.stored["pr-7"] = cache.previews["pr-7"]
            stale = {"phase": "Ready", "allowedHosts": ["pr-7.preview.example.com"]}
            cache.previews["pr-7"] = {"metadata": {"name": "pr-7"}, "status": stale}  # the older watch event
            await reporter.report("pr-7")
            assert dep.call_count == 1 and st.call_count == 1


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


# --- pull requests: the backstop for previews of closed pull requests ---------------------------------

PR_URL = f"{API}/repos/{REPO}/pulls/7"


def pr_body(state: str = "open", merged: bool = False, sha: str = SHA) -> dict:
    return {"number": 7, "state": state, "merged": merged, "head": {"sha": sha, "ref": "feature"}}


async def test_pull_request_lookups_are_conditional_and_exact() -> None:
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            route = gh.get(PR_URL).mock(side_effect=[
                httpx.Response(200, json=pr_body(), headers={"etag": 'W/"abc"'}),
                httpx.Response(304, headers={"etag": 'W/"abc"'}),
            ])
            c = client(http)
            pr, etag = await c.pull_request(REPO, "7")
            assert (pr.state, pr.merged, pr.head_sha, pr.ref, etag) == ("open", False, SHA, "acme/shop#7", 'W/"abc"')
            assert await c.pull_request(REPO, "7", etag) == (None, 'W/"abc"')
    first, second = (call.request for call in route.calls)
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"] == 'W/"abc"'
    for req in (first, second):
        assert req.method == "GET" and req.headers["authorization"] == "Bearer ghp_test"
        assert req.headers["accept"] == "application/vnd.github+json"
        assert req.headers["x-github-api-version"] == "2022-11-28"


@pytest.mark.parametrize("body", [[], {"state": "open", "head": "nope"}, {"merged": True}])
async def test_a_malformed_pull_request_answer_is_an_error_not_a_crash(body) -> None:
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            gh.get(PR_URL).respond(200, json=body)
            with pytest.raises(GitHubError, match="unexpected answer"):
                await client(http).pull_request(REPO, "7")


async def test_writes_ask_the_lease_fence_first_and_reads_do_not() -> None:
    from kube.client import NotLeader

    def fence() -> float:
        raise NotLeader("lost")

    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=False) as gh:
            statuses = gh.post(f"{API}/repos/{REPO}/deployments/1/statuses").respond(201, json={})
            pulls = gh.get(PR_URL).respond(200, json=pr_body())
            c = GitHubClient(API, StaticToken("t"), http, sleep=Sleeps(), fence=fence)
            with pytest.raises(NotLeader):
                await c.create_status(REPO, 1, "inactive")
            await c.pull_request(REPO, "7")
    assert statuses.call_count == 0 and pulls.call_count == 1


class PrCache:
    def __init__(self, **annotations: str) -> None:
        from datetime import UTC, datetime

        self.namespaces = {
            "pr-7": NamespaceView("pr-7", "u", datetime.now(UTC), labels={"preview-broker.io/pr": "7"},
                                  annotations={"preview-broker.io/github-repo": REPO, **annotations}),
            "no-pr": NamespaceView("no-pr", "u", datetime.now(UTC)),
        }
        self.pull_requests: dict = {}


def checker(http, cache, woken, sleep=None, clock=lambda: 1_800_000_000.0, reserve=200, min_gap=0.0):
    from controller.metrics import ControllerMetrics
    from controller.pullrequests import PullRequestChecker

    metrics = ControllerMetrics()
    c = PullRequestChecker(client(http, sleep=sleep), cache, woken.append, interval=300, reserve=reserve,
                           metrics=metrics, clock=clock, sleep=sleep or Sleeps(), min_gap=min_gap)
    return c, metrics


async def test_checker_follows_a_pull_request_to_its_close_with_etags_and_wakes_the_reconcile_on_change() -> None:
    cache, woken = PrCache(), []
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            route = gh.get(PR_URL).mock(side_effect=[
                httpx.Response(200, json=pr_body(), headers={"etag": '"e1"'}),
                httpx.Response(304),
                httpx.Response(200, json=pr_body("closed", merged=True), headers={"etag": '"e2"'}),
            ])
            c, metrics = checker(http, cache, woken)
            c.notify("pr-7")
            c.notify("pr-7")  # scheduled once, however many reconciles tell it
            c.notify("no-pr")  # names no pull request: never looked up
            assert len(c.queue) == 1
            for _ in range(3):
                await c.check("pr-7")
    assert [call.request.headers.get("if-none-match") for call in route.calls] == [None, '"e1"', '"e1"']
    assert woken == ["pr-7", "pr-7"]  # open (first seen), then closed; not the 304
    pr = cache.pull_requests["pr-7"]
    assert (pr.state, pr.merged) == ("closed", True) and c.etags["pr-7"] == '"e2"'
    assert c.queue.delayed() == 1  # looked up again after the interval
    counts = {s.labels["result"]: s.value for s in metrics.pull_request_checks.collect()[0].samples
              if s.name.endswith("_total")}
    assert counts == {"open": 1, "not_modified": 1, "closed": 1}


async def test_checker_forgets_a_namespace_that_is_gone() -> None:
    cache, woken = PrCache(), []
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            gh.get(PR_URL).respond(200, json=pr_body(), headers={"etag": '"e1"'})
            c, _ = checker(http, cache, woken)
            c.notify("pr-7")
            await c.check("pr-7")
            del cache.namespaces["pr-7"]
            await c.check("pr-7")  # no request: nothing to ask about
    assert "pr-7" not in cache.pull_requests and "pr-7" not in c.etags and not c._scheduled


async def test_checker_pauses_until_the_reset_when_the_budget_is_down_to_the_reserve() -> None:
    cache, woken, sleeps = PrCache(), [], Sleeps()
    now = 1_800_000_000.0
    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            route = gh.get(PR_URL).respond(200, json=pr_body(), headers={
                "etag": '"e1"', "x-ratelimit-remaining": "150", "x-ratelimit-reset": str(int(now) + 600)})
            c, _ = checker(http, cache, woken, sleep=sleeps, clock=lambda: now, reserve=200)
            await c.check("pr-7")
            assert sleeps.waits == []  # nothing known about the budget before the first answer
            await c.check("pr-7")
    assert sleeps.waits == [601.0] and route.call_count == 2  # waited for the reset, then asked


async def test_checker_spaces_its_lookups_however_many_previews_wait() -> None:
    cache, woken, sleeps = PrCache(), [], Sleeps()
    now = [1_800_000_000.0]

    async def sleep(seconds: float) -> None:
        sleeps.waits.append(seconds)
        now[0] += seconds

    async with httpx.AsyncClient() as http:
        with respx.mock(assert_all_called=True) as gh:
            gh.get(PR_URL).respond(200, json=pr_body(), headers={"etag": '"e1"'})
            c, _ = checker(http, cache, woken, sleep=sleep, clock=lambda: now[0], min_gap=0.1)  # type: ignore[arg-type]
            for _ in range(4):
                await c.check("pr-7")  # back to back, as many workers would
    assert sleeps.waits == pytest.approx([0.1, 0.1, 0.1])  # the first goes at once, then one per 0.1 s


@pytest.mark.parametrize(
    ("annotations", "label", "expected"),
    [({"preview-broker.io/github-repo": "acme/shop"}, "7", ("acme/shop", "7")),
     ({"preview-broker.io/github-repo": "acme/shop"}, "007", ("acme/shop", "7")),
     ({"preview-broker.io/github-repo": "acme/shop/../x"}, "7", None),
     ({"preview-broker.io/github-repo": "acme/shop"}, "7; rm", None),
     ({"preview-broker.io/github-repo": "acme/shop"}, "٣", None),  # a digit, but not an ASCII one
     ({}, "7", None)],
)
def test_only_well_formed_repo_and_number_are_looked_up(annotations, label, expected) -> None:
    from controller.pullrequests import target

    assert target(annotations, label) == expected
