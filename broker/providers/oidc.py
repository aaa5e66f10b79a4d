"""OpenID Connect (Google, Keycloak, Okta, Azure AD, Dex, GitLab, ...) by discovery.

authlib exchanges the code (client_secret_basic, PKCE) and checks the ID token's claims
(authlib.oidc.core.CodeIDToken: iss, aud, exp, nonce, azp, at_hash); its signature is
verified with joserfc, the JOSE library authlib itself builds on, against the provider's
published keys, asymmetric algorithms only.  Discovery is a cached GET here: authlib does it
only inside its web-framework integrations, which keep per-login state in a server-side
session the stateless broker does not have.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.errors import IdPError, LoginRefused
from broker.identity import Identity
from broker.providers import entra
from broker.providers.base import (
    Transports,
    exchange_code,
    http_client,
    idp_call,
    json_body,
    oauth_client,
)
from broker.settings import BrokerSettings

DISCOVERY_TTL = 3600.0
# Never accept unsigned or symmetric ID tokens: the client secret is not a signing key we trust.
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class OIDCProvider:
    uses_nonce = True

    def __init__(self, settings: BrokerSettings, transports: Transports | None = None) -> None:
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.name = settings.oidc_issuer
        self._settings = settings
        self._http = http_client(settings, transports)
        self._oauth = oauth_client(settings, "client_secret_basic", transports)
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = 0.0
        self._keys: KeySet | None = None
        # OIDC_EMAIL_VERIFIED=entra: the one tenant whose tokens may vouch for an email (settings checked it).
        self._tenant = entra.tenant_of(self.issuer) if settings.oidc_email_verified == "entra" else None

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is not None and time.monotonic() - self._discovered_at < DISCOVERY_TTL:
            return self._discovery
        url = self.issuer + "/.well-known/openid-configuration"
        async with idp_call("discovery"):
            resp = await self._http.get(url)
        if resp.status_code != 200:
            raise IdPError("idp_discovery_failed", f"OIDC discovery failed ({resp.status_code}).")
        doc = json_body(resp, "discovery")
        if not isinstance(doc, dict) or doc.get("issuer", "").rstrip("/") != self.issuer:
            raise IdPError("idp_discovery_mismatch", "OIDC discovery names a different issuer.")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise IdPError("idp_discovery_incomplete", f"OIDC discovery lacks {key}.")
        self._discovery, self._discovered_at = doc, time.monotonic()
        return doc

    async def authorization_endpoint(self) -> str:
        return (await self.discovery())["authorization_endpoint"]

    def gate_params(self) -> dict[str, str]:
        return {"scope": " ".join(self._settings.oidc_scopes), "code_challenge_method": "S256"}

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            doc = await self.discovery()
            async with idp_call("jwks"):
                resp = await self._http.get(doc["jwks_uri"])
            body = json_body(resp, "jwks")
            try:
                self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError):
                raise IdPError("idp_bad_jwks", "The identity provider published unusable signing keys.") from None
        return self._keys

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._oauth.aclose()

    async def identity_from_code(self, code: str, *, code_verifier: str, nonce: str) -> Identity:
        doc = await self.discovery()
        tokens = await exchange_code(self._oauth, doc["token_endpoint"], code=code,
                                     redirect_uri=self._settings.callback_url, code_verifier=code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise LoginRefused("no_id_token", "The identity provider sent no ID token (is the openid scope allowed?).")
        claims = await self._verify_id_token(id_token, nonce, tokens["access_token"])
        # Entra vouches (xms_edov) for the ID token's own email: decided before userinfo adds anything.
        verified = entra.email_verified(claims, self._tenant) if self._tenant else None
        groups_claim = self._settings.oidc_groups_claim
        if groups_claim not in claims and doc.get("userinfo_endpoint") and self._settings.allowed_groups:
            async with idp_call("userinfo"):
                info = await self._http.get(
                    doc["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}
                )
            extra = json_body(info, "userinfo") if info.status_code == 200 else {}
            if isinstance(extra, dict) and extra.get("sub") == claims.get("sub"):
                # The ID token's claims win; userinfo adds what it lacks (the groups, if userinfo has them).
                claims = {**extra, **claims}
        return identity_from_claims(claims, groups_claim, self._settings.oidc_username_claim, verified)

    async def _verify_id_token(self, id_token: str, nonce: str, access_token: str) -> dict[str, Any]:
        for attempt in (0, 1):
            keys = await self._key_set(refresh=attempt == 1)
            try:
                token = jwt.decode(id_token, keys, algorithms=list(ASYMMETRIC))
                break
            except (JoseError, ValueError) as exc:
                # An unknown key id after the IdP rotated keys: fetch the JWKS once more.
                if attempt == 0 and "key" in type(exc).__name__.lower():
                    continue
                raise LoginRefused("id_token_invalid", "The ID token signature did not verify.") from None
        client_id = self._settings.client_id
        claims = CodeIDToken(
            token.claims, token.header,
            options={"iss": {"essential": True, "value": self.issuer}, "aud": {"essential": True, "value": client_id},
                     "nonce": {"essential": True}},
            params={"nonce": nonce, "client_id": client_id, "access_token": access_token},
        )
        try:
            claims.validate(leeway=60)
        except JoseError as exc:
            reason = "id_token_azp" if getattr(exc, "claim", "") == "azp" else "id_token_claims"
            raise LoginRefused(reason, f"The ID token was refused ({type(exc).__name__}).") from None
        return dict(claims)


def groups_overage(claims: dict[str, Any], groups_claim: str) -> bool:
    """Whether the IdP said the user's groups exist but left them out of the token: a distributed
    claim (OpenID Connect Core 5.6.2: `_claim_names` names the claim, `_claim_sources` the endpoint
    to fetch it from; Entra's "groups overage" above 200 groups) or Entra's `hasgroups: true`.
    Fetching them would mean calling Microsoft Graph with a token the broker does not ask for; the
    login is refused with that reason instead (broker/identity.py)."""
    if claims.get(groups_claim) is not None:
        return False
    names = claims.get("_claim_names")
    return (isinstance(names, dict) and groups_claim in names) or claims.get("hasgroups") is True


def identity_from_claims(claims: dict[str, Any], groups_claim: str, username_claim: str,
                         verified: bool | None = None) -> Identity:
    """Who logged in, from verified claims.  The user name comes only from the claim the operator
    names as the provider's user name, else the email, else `sub`: never from a display name
    (`name`), which users edit freely and which would let one person pose as another.
    `verified` is the provider's own ruling on the email (OIDC_EMAIL_VERIFIED=entra: broker/providers/entra.py);
    None: the OIDC rule, `email_verified: true`."""
    groups = claims.get(groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        groups = []
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    if verified is None:
        verified = claims.get("email_verified") is True
    asserted = claims.get(username_claim) if username_claim else None
    user = asserted if isinstance(asserted, str) and asserted else (email if verified else "") or str(claims["sub"])
    return Identity(
        user=str(user),
        email=email or "",
        email_verified=verified,
        # All of them: the login keeps those the rules and HEADER_GROUPS read (groupfilter.py);
        # a fixed cut here would drop a named group that came 201st.
        groups=tuple(str(g) for g in groups if isinstance(g, str | int)),
        groups_overage=groups_overage(claims, groups_claim),
    )
