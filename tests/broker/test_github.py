"""GitHub provider: exact token request, verified primary email, orgs and teams; API mocked with respx."""

from __future__ import annotations

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from broker.app import create_app
from broker.loginstate import s256
from tests.support.brokerunit import PUBLIC, make_settings
from tests.support.fakeidp import form_of
from tests.support.flows import broker_start, callback, forward_auth, query_of

DEEP = "https://pr-1.preview.example.com/x"
API = "https://api.github.com"


@pytest.fixture
def gh():
    with respx.mock(assert_all_called=False) as router:
        router.post("https://github.com/login/oauth/access_token").respond(
            200, json={"access_token": "gho_abc", "token_type": "bearer", "scope": "read:user,user:email,read:org"}
        )
        router.get(f"{API}/user").respond(200, json={"login": "octocat", "id": 1})
        router.get(f"{API}/user/emails").respond(
            200,
            json=[
                {"email": "octo@spam.example", "primary": False, "verified": True},
                {"email": "octocat@example.com", "primary": True, "verified": True},
            ],
        )
        router.get(f"{API}/user/orgs").respond(200, json=[{"login": "acme"}])
        router.get(f"{API}/user/teams").respond(
            200, json=[{"slug": "platform", "organization": {"login": "acme"}}]
        )
        yield router


def _client(allowlist, **overrides):
    settings = make_settings(provider="github", oidc_issuer="", **overrides)
    return TestClient(create_app(settings, allowlist=allowlist), base_url=PUBLIC, follow_redirects=False)


def _login(c: TestClient) -> tuple[dict[str, str], httpx.Response]:
    resp = broker_start(c, DEEP)
    assert resp.status_code == 302
    params = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith("https://github.com/login/oauth/authorize?")
    return params, callback(c, code="gh-code", state=params["state"])


def test_github_login_with_team_rule(gh, allowlist) -> None:
    with _client(allowlist, allowed_email_domains=[], github_teams=["acme/platform"]) as c:
        params, resp = _login(c)
        assert params["scope"] == "read:user user:email read:org"
        assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
        assert "nonce" not in params  # plain OAuth 2.0: no ID token to carry it
        assert resp.status_code == 302, resp.text
        token_req = gh.calls[0].request
        form = form_of(token_req)
        assert token_req.url == "https://github.com/login/oauth/access_token"
        assert token_req.headers["accept"] == "application/json"
        assert form["client_id"] == "preview-client" and form["client_secret"] == "s3cret-client-secret"
        assert form["code"] == "gh-code" and form["redirect_uri"] == f"{PUBLIC}/oauth2/callback"
        assert s256(form["code_verifier"]) == params["code_challenge"]
        api_calls = [call.request for call in gh.calls[1:]]
        assert [r.url.path for r in api_calls] == ["/user", "/user/emails", "/user/orgs", "/user/teams"]
        assert all(r.headers["authorization"] == "Bearer gho_abc" for r in api_calls)
        ticket = forward_auth(c, resp.headers["location"])
        cookie = ticket.headers["set-cookie"].split(";")[0]
        ok = forward_auth(c, DEEP, cookie)
        assert ok.status_code == 202
        assert ok.headers["x-auth-request-user"] == "octocat"
        assert ok.headers["x-auth-request-email"] == "octocat@example.com"
        # Only what the rule reads travels (HEADER_GROUPS is empty): the team, not the org.
        assert ok.headers["x-auth-request-groups"] == "acme/platform"


def test_github_without_membership_rules_does_not_ask_for_orgs(gh, allowlist) -> None:
    with _client(allowlist) as c:
        params, resp = _login(c)
        assert params["scope"] == "read:user user:email"
        assert resp.status_code == 302
        assert [call.request.url.path for call in gh.calls[1:]] == ["/user", "/user/emails"]


def test_github_org_not_allowed_is_403(gh, allowlist) -> None:
    with _client(allowlist, allowed_email_domains=[], github_orgs=["other-org"]) as c:
        _, resp = _login(c)
        assert resp.status_code == 403 and "octocat" in resp.text


def test_github_unverified_primary_email_is_403(gh, allowlist) -> None:
    gh.get(f"{API}/user/emails").respond(200, json=[{"email": "o@example.com", "primary": True, "verified": False}])
    with _client(allowlist) as c:
        _, resp = _login(c)
        assert resp.status_code == 403


def test_github_enterprise_urls(allowlist) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.post("https://ghe.example.com/login/oauth/access_token").respond(200, json={"access_token": "t"})
        router.get("https://ghe.example.com/api/v3/user").respond(200, json={"login": "ent"})
        router.get("https://ghe.example.com/api/v3/user/emails").respond(
            200, json=[{"email": "ent@example.com", "primary": True, "verified": True}]
        )
        with _client(allowlist, github_url="https://ghe.example.com") as c:
            resp = broker_start(c, DEEP)
            assert resp.headers["location"].startswith("https://ghe.example.com/login/oauth/authorize?")
            state = query_of(resp.headers["location"])["state"]
            assert callback(c, code="x", state=state).status_code == 302


@pytest.mark.parametrize(
    ("route", "response", "status"),
    [
        ("token", httpx.Response(200, json={"error": "bad_verification_code"}), 400),
        ("user", httpx.Response(401, json={"message": "Bad credentials"}), 502),
        ("user", httpx.Response(200, text="<html>"), 502),
    ],
)
def test_github_failures(gh, allowlist, route, response, status) -> None:
    if route == "token":
        gh.post("https://github.com/login/oauth/access_token").mock(return_value=response)
    else:
        gh.get(f"{API}/user").mock(return_value=response)
    with _client(allowlist) as c:
        _, resp = _login(c)
        assert resp.status_code == status
        assert "location" not in resp.headers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/user/teams", {"not": "a list"}),
        ("/user/teams", [{"slug": "platform"}]),  # no organization
        ("/user/teams", [{"slug": "platform", "organization": {"name": "acme"}}]),  # no organization.login
        ("/user/teams", [{"slug": 7, "organization": {"login": "acme"}}]),
        ("/user/orgs", None),
        ("/user/orgs", [{"id": 1}]),
        ("/user/orgs", ["acme"]),
        ("/user/emails", {"email": "x"}),
        ("/user", {"login": 12}),
        ("/user", []),
    ],
)
def test_a_malformed_github_answer_is_a_502_never_a_500(gh, allowlist, path, body) -> None:
    gh.get(f"{API}{path}").respond(200, json=body)
    with _client(allowlist, allowed_email_domains=[], github_orgs=["acme"]) as c:
        _, resp = _login(c)
        assert resp.status_code == 502, resp.text
        assert "idp_bad_response" in resp.text and "Traceback" not in resp.text


def test_a_non_string_email_is_ignored_not_trusted(gh, allowlist) -> None:
    gh.get(f"{API}/user/emails").respond(200, json=[{"email": ["x@example.com"], "primary": True, "verified": True}])
    with _client(allowlist) as c:
        _, resp = _login(c)
        assert resp.status_code == 403  # no verified email: the email-domain rule refuses


def test_org_and_team_lists_follow_the_link_pages(gh, allowlist) -> None:
    page2 = f"{API}/user/teams?per_page=100&page=2"

    def teams(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json=[{"slug": "platform", "organization": {"login": "acme"}}])
        return httpx.Response(200, json=[{"slug": f"t{i}", "organization": {"login": "other"}} for i in range(100)],
                              headers={"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'})

    gh.get(f"{API}/user/teams").mock(side_effect=teams)
    with _client(allowlist, allowed_email_domains=[], github_teams=["acme/platform"]) as c:
        _, resp = _login(c)
        assert resp.status_code == 302, resp.text
        teams = [str(call.request.url) for call in gh.calls if call.request.url.path == "/user/teams"]
        assert teams == [f"{API}/user/teams?per_page=100", page2]


def test_a_link_to_another_host_is_not_followed_with_the_token(gh, allowlist) -> None:
    gh.get(f"{API}/user/orgs").respond(200, json=[{"login": "other"}],
                                       headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'})
    stolen = gh.get("https://evil.example/steal").respond(200, json=[{"login": "acme"}])
    with _client(allowlist, allowed_email_domains=[], github_orgs=["acme"]) as c:
        _, resp = _login(c)
        assert resp.status_code == 403  # only the first page counted: not in acme
        assert not stolen.called


def test_github_header_groups_star_passes_orgs_and_teams(gh, allowlist) -> None:
    with _client(allowlist, allowed_email_domains=[], github_teams=["acme/platform"], header_groups=["*"]) as c:
        _, resp = _login(c)
        cookie = forward_auth(c, resp.headers["location"]).headers["set-cookie"].split(";")[0]
        assert forward_auth(c, DEEP, cookie).headers["x-auth-request-groups"] == "acme,acme/platform"
