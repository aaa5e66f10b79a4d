"""Microsoft Entra ID as its v2.0 endpoints answer a single-tenant app (unit tests; respx).

What makes Entra different from the OIDC the broker otherwise sees, reproduced exactly:

* the issuer is the tenant's, https://login.microsoftonline.com/<tid>/v2.0, and the endpoints sit
  under /<tid>/oauth2/v2.0/ and /<tid>/discovery/v2.0/keys; userinfo is Microsoft Graph's;
* ID tokens carry `ver`, `tid`, `oid`, `preferred_username`, `email` (optional claim) and never
  `email_verified`; `xms_edov` only when the app registration adds it as an optional claim;
* a user in more groups than fit (200 in a JWT) gets no `groups` claim but a distributed claim
  pointing at Graph: `_claim_names: {"groups": "src1"}` and `_claim_sources` (the "groups overage");
  the implicit flow says `hasgroups: true` instead;
* Graph's userinfo answers sub, name, given and family name, picture and email: never groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.fakeidp import FakeIdP

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
LOGIN = "https://login.microsoftonline.com"
ENTRA_ISSUER = f"{LOGIN}/{TENANT}/v2.0"
OID = "00000000-0000-0000-66f3-3332eca7ea81"
GRAPH_USERINFO = "https://graph.microsoft.com/oidc/userinfo"
# Object ids, as Entra sends groups unless the app asks for names.
GROUP_ENG = "8c5e2d3a-0d7b-4f6e-9a51-2b3c4d5e6f70"


def entra_claims(**changes: Any) -> dict[str, Any]:
    """An Entra v2.0 ID token's own claims for a member of TENANT (iss, aud, times, nonce added by FakeIdP)."""
    claims: dict[str, Any] = {
        "ver": "2.0",
        "tid": TENANT,
        "oid": OID,
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",  # pairwise per app: not the oid
        "preferred_username": "ada@contoso.example",
        "name": "Ada Lovelace",
        "email": "ada@contoso.example",
        "aio": "Df2UVXL1ix!lMCWMSOJBcFatzcGfvFGhjKv8q5g0x732dR5MB5BisvGQO7YWByjd8iQDLq!eGbIDakyp5mnOrcdqHeYSnltepQmRp6AIZ8jY",
        "uti": "cS6d5s3pQ0eDlqXzp9MbAA",
        "rh": "0.ARoAv4j5cvGGr0GRqy180BHbR1qSPzm7gNpFgrqA8pYgFSAaAAA.",
        "sid": "00000000-0000-0000-5ee7-3bd2de7a9aa1",
        "groups": [GROUP_ENG],
        **changes,
    }
    return {k: v for k, v in claims.items() if v is not None}


def overage(tenant: str = TENANT, oid: str = OID) -> dict[str, Any]:
    """The claims Entra puts in place of `groups` when the user is in too many groups."""
    return {
        "groups": None,
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": f"https://graph.windows.net/{tenant}/users/{oid}/getMemberObjects"}},
    }


@dataclass
class FakeEntra(FakeIdP):
    issuer: str = ENTRA_ISSUER
    claims: dict[str, Any] = field(default_factory=entra_claims)
    userinfo_requests: list[httpx.Request] = field(default_factory=list)
    mail: str = "ada@contoso.example"  # the user's `mail` in the directory, which Graph's userinfo returns

    def discovery_document(self) -> dict[str, Any]:
        base = self.issuer.removesuffix("/v2.0")
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": GRAPH_USERINFO,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                                 "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                                 "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def install(self) -> FakeEntra:
        super().install()
        self.router.get(GRAPH_USERINFO).mock(side_effect=self._userinfo)
        return self

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        return httpx.Response(200, json={
            "token_type": "Bearer", "scope": "openid profile email User.Read", "expires_in": 4347,
            "ext_expires_in": 4347, "access_token": "eyJ0eXAiOiJKV1QiLCJub25jZSI6Ik1T.graph.token",
            "id_token": self.id_token(),
        })

    def _userinfo(self, request: httpx.Request) -> httpx.Response:
        self.userinfo_requests.append(request)
        c = {**self.claims, **self.id_token_overrides}
        return httpx.Response(200, json={
            "sub": c["sub"], "name": c.get("name"), "family_name": "Lovelace", "given_name": "Ada",
            "picture": GRAPH_USERINFO.replace("oidc/userinfo", "v1.0/me/photo/$value"), "email": self.mail,
        })
