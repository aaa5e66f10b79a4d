"""An OIDC provider mocked with respx at the HTTP level (unit tests only).

The real-IdP tests use Dex (tests/integration); here we need exact control over
what the IdP answers and an exact record of what the broker sent it.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import RSAKey

ISSUER = "https://idp.example.org"
# One key for the whole run: RSA generation is the slowest thing in these tests.
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
CLIENT_ID = "preview-client"
CLIENT_SECRET = "s3cret-client-secret"


@dataclass
class FakeIdP:
    router: respx.MockRouter
    key: RSAKey = field(default_factory=lambda: SIGNING_KEY)
    claims: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "u-1",
            "email": "ada@example.com",
            "email_verified": True,
            "preferred_username": "ada",
            "groups": ["eng"],
        }
    )
    token_requests: list[httpx.Request] = field(default_factory=list)
    nonce: str = ""
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    issuer: str = ISSUER

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
        }

    def install(self) -> FakeIdP:
        doc = self.discovery_document()
        self.router.get(f"{self.issuer}/.well-known/openid-configuration").respond(200, json=doc)
        self.router.get(doc["jwks_uri"]).respond(200, json={"keys": [self.key.as_dict(private=False)]})
        self.token_route = self.router.post(doc["token_endpoint"]).mock(side_effect=self._token)
        return self

    def remember_authorize(self, location: str) -> dict[str, str]:
        """Parse the authorize redirect the broker produced; remembers its nonce."""
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == self.discovery_document()["authorization_endpoint"], \
            location
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.nonce = params.get("nonce", "")
        return params

    def id_token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce,
            **self.claims,
            **self.id_token_overrides,
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        return httpx.Response(200, json={"access_token": "at-1", "token_type": "Bearer", "id_token": self.id_token()})


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def basic_auth_of(request: httpx.Request) -> tuple[str, str]:
    scheme, _, value = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password
