"""Gateway API external auth (GEP-1494's HTTP protocol, Envoy's HTTP ext_authz): the gateway
sends the original request, its path under EXT_AUTH_PREFIX, and gets 200 to allow."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from broker.settings import BrokerSettings
from foundation.config import ConfigError, load
from tests.support.brokerunit import PR1, PR2, PUBLIC, make_settings
from tests.support.fakeidp import FakeIdP
from tests.support.flows import forward_auth, gate_login, query_of, session_cookie


def check(client: TestClient, host: str, path: str, cookie: str | None = None, *, method: str = "GET",
          accept: str = "*/*", extra: dict[str, str] | None = None):
    """The check a gateway sends: the original method, Host and path (under the prefix), allowed headers."""
    headers = {"host": host, "accept": accept, **(extra or {})}
    if cookie:
        headers["cookie"] = cookie
    client.cookies.clear()
    return client.request(method, "/oauth2/ext" + path, headers=headers)


def _session(client: TestClient, idp: FakeIdP) -> str:
    cookie, _ = session_cookie(forward_auth(client, gate_login(client, idp, f"https://{PR1}/")))
    return cookie


def test_a_signed_in_request_is_allowed_with_200_and_the_identity(client: TestClient, idp: FakeIdP) -> None:
    resp = check(client, PR1, "/deep/link?x=1", _session(client, idp))
    assert resp.status_code == 200
    assert resp.headers["x-auth-request-user"] == "ada" and resp.headers["x-auth-request-email"] == "ada@example.com"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "HEAD"])
def test_the_original_method_is_checked_as_sent(client: TestClient, idp: FakeIdP, method: str) -> None:
    assert check(client, PR1, "/api", _session(client, idp), method=method).status_code == 200


def test_a_browser_without_a_session_is_sent_to_log_in_on_the_preview(client: TestClient) -> None:
    resp = check(client, PR1, "/deep/link?x=1", accept="text/html")
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(f"{PUBLIC}/oauth2/start?")
    assert query_of(resp.headers["location"])["rd"] == f"https://{PR1}/deep/link?x=1"
    assert resp.headers["set-cookie"].startswith("__Host-pb_login=")


@pytest.mark.parametrize(("host", "cookie", "status"), [
    (PR1, None, 401),  # an API call without a session
    (PR1, "__Host-pb_session=forged.AAAA.AAAA", 401),
    ("pr-9.preview.example.com", None, 403),  # not a live preview
])
def test_everything_else_is_refused(client: TestClient, host: str, cookie, status: int) -> None:
    resp = check(client, host, "/", cookie)
    assert resp.status_code == status and "x-auth-request-user" not in resp.headers


def test_a_cookie_of_another_preview_opens_nothing(client: TestClient, idp: FakeIdP) -> None:
    cookie = _session(client, idp)
    assert check(client, PR2, "/", cookie).status_code == 401


def test_a_client_sent_forwarded_header_never_downgrades_the_scheme(client: TestClient, idp: FakeIdP) -> None:
    """Without ALLOW_HTTP the scheme is the gateway's https: a copied X-Forwarded-Proto is not read."""
    cookie = _session(client, idp)
    assert check(client, PR1, "/", cookie, extra={"x-forwarded-proto": "http"}).status_code == 200
    login = check(client, PR1, "/x", accept="text/html", extra={"x-forwarded-proto": "http"})
    assert "Secure" in login.headers["set-cookie"]


def test_the_original_path_is_kept_exactly_as_sent(client: TestClient) -> None:
    resp = check(client, PR1, "/a%2Fb/%C3%A9?q=%2F", accept="text/html")
    assert query_of(resp.headers["location"])["rd"] == f"https://{PR1}/a%2Fb/%C3%A9?q=%2F"


def test_the_preview_host_s_broker_paths_work_through_the_check(client: TestClient, idp: FakeIdP) -> None:
    ticket_url = gate_login(client, idp, f"https://{PR1}/here")
    login = "; ".join(f"{k}={v}" for k, v in client.preview_jar[PR1].items())  # type: ignore[attr-defined]
    redeemed = check(client, PR1, ticket_url.split(PR1, 1)[1], login)
    assert redeemed.status_code == 302 and redeemed.headers["location"] == f"https://{PR1}/here"
    assert redeemed.headers["set-cookie"].startswith("__Host-pb_session=")
    asked = check(client, PR1, "/oauth2/sign_out?rd=/")
    assert asked.status_code == 302 and asked.headers["location"].startswith(f"{PUBLIC}/oauth2/sign_out?")


def test_a_missing_host_is_a_clear_400(client: TestClient) -> None:
    resp = client.get("/oauth2/ext/", headers={"host": ""})
    assert resp.status_code == 400


def test_another_prefix_can_be_configured(idp: FakeIdP, allowlist) -> None:
    app = create_app(make_settings(ext_auth_prefix="/oauth2/gateway-auth/"), allowlist=allowlist)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as c:
        assert c.get("/oauth2/gateway-auth/x", headers={"host": PR1}).status_code == 401
        assert c.get("/oauth2/ext/x", headers={"host": PR1}).status_code == 404


@pytest.mark.parametrize("prefix", ["/ext", "/oauth2/auth", "/oauth2/ext?x", "oauth2/ext", "/oauth2//x"])
def test_a_bad_prefix_stops_start_up_with_one_line(prefix: str) -> None:
    env = {"PREVIEW_BROKER_PUBLIC_URL": PUBLIC, "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
           "PREVIEW_BROKER_SECRET_KEYS": "k" * 40, "PREVIEW_BROKER_PROVIDER": "github",
           "PREVIEW_BROKER_CLIENT_ID": "c", "PREVIEW_BROKER_CLIENT_SECRET": "s",
           "PREVIEW_BROKER_ALLOWED_HOSTS": PR1, "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
           "PREVIEW_BROKER_EXT_AUTH_PREFIX": prefix}
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, env)
    assert err.value.setting == "PREVIEW_BROKER_EXT_AUTH_PREFIX" and "\n" not in str(err.value)
