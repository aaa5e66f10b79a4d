"""What the broker needs from an identity provider, and the HTTP boundary helpers
that translate httpx and authlib failures into the broker's own errors.

Codes are exchanged by authlib's AsyncOAuth2Client (client authentication, PKCE verifier,
the token answer's checks); the provider's other calls (discovery, keys, userinfo, GitHub's
API) go through a plain httpx client: authlib's would attach the last login's token to them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from broker.errors import IdPError, IdPTimeout, LoginRefused
from broker.identity import Identity
from broker.settings import BrokerSettings
from foundation.trust import client_verify

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client


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

    async def aclose(self) -> None: ...


# Wraps one client's connection transport (in the metrics' timed one); None: the bare transport.
Transports = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]


def _authlib_httpx() -> tuple[type, type]:
    """authlib's httpx client and its error.  authlib announces on import, as a warning it forces to
    show, that it prefers the httpx2 fork; that line is not JSON and tells an operator nothing."""
    with warnings.catch_warnings():
        import authlib.deprecate  # noqa: F401  (its import puts an "always" filter in front: ours goes after it)

        warnings.simplefilter("ignore", DeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
    return AsyncOAuth2Client, OAuthError


def _transport(settings: BrokerSettings, transports: Transports | None) -> httpx.AsyncBaseTransport:
    """The connections to the IdP, trusting EXTRA_CA_CERTS besides httpx's default CAs (made once per
    client, at start-up)."""
    inner = httpx.AsyncHTTPTransport(verify=client_verify(settings.extra_ca_certs))
    return transports(inner) if transports else inner


def http_client(settings: BrokerSettings, transports: Transports | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=settings.idp_timeout, follow_redirects=False,
                             transport=_transport(settings, transports))


def oauth_client(settings: BrokerSettings, auth_method: str, transports: Transports | None = None) -> AsyncOAuth2Client:
    """authlib's OAuth 2 client, authenticating as CLIENT_ID with `auth_method` (codes only)."""
    AsyncOAuth2Client, _ = _authlib_httpx()  # noqa: N806
    return AsyncOAuth2Client(client_id=settings.client_id, client_secret=settings.client_secret,
                             token_endpoint_auth_method=auth_method, timeout=settings.idp_timeout,
                             follow_redirects=False, transport=_transport(settings, transports))


async def exchange_code(client: AsyncOAuth2Client, url: str, *, code: str, redirect_uri: str,
                        code_verifier: str) -> dict[str, Any]:
    """The token endpoint's answer to an authorization code (with its PKCE verifier), or a broker error."""
    _, OAuthError = _authlib_httpx()  # noqa: N806

    try:
        async with idp_call("token"):
            try:
                token = await client.fetch_token(url, grant_type="authorization_code", code=code,
                                                 redirect_uri=redirect_uri, code_verifier=code_verifier)
            except httpx.HTTPStatusError as exc:
                token_response(exc.response)  # 4xx: the code was refused; 5xx: the IdP is broken
                raise
            finally:
                client.token = None  # authlib keeps the last token on the client: nothing to keep here
    except OAuthError as exc:
        reason = str(exc.error or "error")[:64]
        raise LoginRefused("token_refused", f"The identity provider refused the login code ({reason}). "
                           "Please retry.") from None
    except ValueError:  # not a JSON object
        raise IdPError("idp_bad_response", "The identity provider sent a malformed token answer.") from None
    if not isinstance(token.get("access_token"), str):
        raise LoginRefused("token_refused", "The identity provider sent no access token. Please retry.")
    return dict(token)


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
