"""What the broker needs from an identity provider, and the HTTP boundary helpers
that translate httpx failures into the broker's own errors."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx

from broker.errors import IdPError, IdPTimeout, LoginRefused
from broker.identity import Identity


class Provider(Protocol):
    #: issuer identifier passed back to relay clients as `iss` when the IdP sends none
    name: str

    #: whether gate-mode logins send an OIDC nonce (and check it in the ID token)
    uses_nonce: bool

    async def authorization_endpoint(self) -> str: ...

    def gate_params(self) -> dict[str, str]:
        """The fixed authorize parameters of gate mode besides client_id and redirect_uri
        (scope, PKCE method). The per-login ones (state, code_challenge, nonce) are the broker's."""
        ...

    async def identity_from_code(self, code: str, *, code_verifier: str, nonce: str) -> Identity: ...


@asynccontextmanager
async def idp_call(what: str):
    """Translate transport failures at the boundary: 504 on timeouts, 502 otherwise."""
    try:
        yield
    except httpx.TimeoutException:
        raise IdPTimeout("idp_timeout", f"The identity provider did not answer in time ({what}).") from None
    except httpx.HTTPError:
        raise IdPError("idp_unreachable", f"The identity provider could not be reached ({what}).") from None


def json_body(resp: httpx.Response, what: str) -> dict[str, Any] | list[Any]:
    try:
        return resp.json()
    except ValueError:
        raise IdPError("idp_bad_response", f"The identity provider sent a malformed answer ({what}).") from None


def token_response(resp: httpx.Response) -> dict[str, Any]:
    """Check a token-endpoint answer: 4xx means the code was refused, 5xx the IdP is broken."""
    if resp.status_code >= 500:
        raise IdPError("idp_error", f"The identity provider failed ({resp.status_code}) exchanging the code.")
    body = json_body(resp, "token")
    if not isinstance(body, dict):
        raise IdPError("idp_bad_response", "The identity provider sent a malformed token answer.")
    if resp.status_code >= 400 or "error" in body or "access_token" not in body:
        code = str(body.get("error", resp.status_code))[:64]
        raise LoginRefused("token_refused", f"The identity provider refused the login code ({code}). Please retry.")
    return body
