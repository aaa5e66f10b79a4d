"""Bad input of every kind: a 4xx with a short page, a logged reason, never a 500 or an unescaped echo."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from tests.support.brokerunit import PR1

XSS = "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "url",
    [
        "/oauth2/start",
        "/oauth2/start?rd=",
        "/oauth2/start?rd=" + "a" * 5000,
        f"/oauth2/start?rd=https://{PR1}/&rd=https://{PR1}/",
        "/oauth2/start?" + "&".join(f"p{i}=1" for i in range(60)),
        "/oauth2/start?rd=%ff%fe",
        "/oauth2/relay",
        f"/oauth2/relay?return_to={XSS}",
        "/oauth2/callback",
        "/oauth2/callback?state=",
        f"/oauth2/callback?state={XSS}&code=1",
        "/oauth2/callback?state=" + "x" * 4000,
        "/oauth2/callback?code=abc",
        "/oauth2/callback?state=a.b.c&state=d",
        "/oauth2/ticket?ticket=abc",
        f"https://{PR1}/oauth2/ticket",
        f"https://{PR1}/oauth2/ticket?ticket={XSS}",
        f"https://{PR1}/oauth2/sign_out?rd=//evil.com",
        "/oauth2/sign_out?rd=https://evil.com",
        "/oauth2/auth",
    ],
)
def test_bad_requests_get_a_4xx_page(client: TestClient, url: str, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="preview_broker.broker"):
        resp = client.get(url)
    assert 400 <= resp.status_code < 500, (url, resp.status_code)
    assert "location" not in resp.headers
    assert "Traceback" not in resp.text
    assert XSS not in resp.text
    assert any(getattr(r, "reason", None) for r in caplog.records), "refusal must log a reason"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-host": "", "x-forwarded-uri": "/"},
        {"x-forwarded-host": "evil..com", "x-forwarded-uri": "/"},
        {"x-forwarded-host": PR1, "x-forwarded-uri": "no-slash"},
        {"x-forwarded-host": PR1, "x-forwarded-uri": "/" + "a" * 9000},
        {"x-forwarded-host": PR1, "x-forwarded-proto": "gopher", "x-forwarded-uri": "/"},
        {"x-forwarded-host": "127.0.0.1", "x-forwarded-uri": "/"},
        {"x-original-url": "not a url"},
        {"x-original-url": f"https://user:pw@{PR1}/"},
        {"x-forwarded-host": "pr-9.preview.example.com", "x-forwarded-uri": "/"},
        {"x-forwarded-host": PR1, "x-forwarded-uri": "/oauth2/ticket?ticket=forged"},
        {"x-forwarded-host": PR1, "x-forwarded-uri": "/oauth2/sign_out?rd=https://evil.com/"},
        {"x-forwarded-host": PR1, "x-forwarded-uri": "/oauth2/start?rd=//evil.com"},
    ],
)
def test_bad_forward_auth_headers(client: TestClient, headers) -> None:
    resp = client.get("/oauth2/auth", headers=headers)
    assert resp.status_code in (400, 401, 403), resp.status_code
    assert "location" not in resp.headers and "set-cookie" not in resp.headers


def test_tampered_session_cookie_is_401(client: TestClient) -> None:
    resp = client.get(
        "/oauth2/auth",
        headers={"x-forwarded-host": PR1, "x-forwarded-uri": "/", "cookie": "__Host-pb_session=eyJ.forged.sig"},
    )
    assert resp.status_code == 401


def test_identity_headers_cannot_smuggle_lines() -> None:
    from broker.forward_auth import identity_headers as _identity_headers
    from broker.identity import Identity

    headers = _identity_headers(Identity("ada\r\nX-Admin: 1", "a@b.c\n", True, ("g\r",)))
    assert all("\r" not in v and "\n" not in v for v in headers.values())
