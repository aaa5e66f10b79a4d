"""Microsoft Entra ID's answers to "is this email address verified?" (OIDC_EMAIL_VERIFIED=entra; pure).

Entra's ID tokens never carry `email_verified`, so under the OIDC rule (trust only
`email_verified: true`) every Entra user is refused by an email-domain rule.  The preset reads
what Microsoft documents instead, and only from one organization's directory:

* The issuer must be one tenant's, https://login.microsoftonline.com/<tenant id>/v2.0, checked at
  start-up.  `common`, `organizations` and `consumers` accept accounts from every tenant, whose
  administrators set their users' `email` to whatever they like (the "nOAuth" finding); the
  consumers tenant's id is refused for the same reason.
* The token's `tid` must be that tenant (the issuer check already binds it; this says so twice).
* The optional claim `xms_edov` ("email domain owner verified") must be JSON `true`: Entra sets it
  when a tenant that verified the email's domain by DNS owns that domain (the user's home tenant,
  or for a guest either tenant), or the address was proven by one-time passcode, a Microsoft or a
  Google account.  Microsoft's claims reference warns that `email` alone is mutable and must not be
  used for authorization, so an `email` without `xms_edov` stays unverified.  The administrator adds
  `email` and `xms_edov` under the app registration's Token configuration (docs/security.md).
"""

from __future__ import annotations

import re
from typing import Any

# The public cloud and the national clouds' login hosts; v2.0 endpoints only (v1 tokens differ).
_TENANT_ISSUER = re.compile(
    r"https://login\.(?:microsoftonline\.com|microsoftonline\.us|partner\.microsoftonline\.cn)"
    r"/(?P<tid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/v2\.0/?"
)
# The tenant of personal Microsoft accounts: anyone can make one, so it is no organization's directory.
CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


def tenant_of(issuer: str) -> str | None:
    """The tenant id of a single-tenant Entra v2.0 issuer URL, else None (multi-tenant or not Entra)."""
    m = _TENANT_ISSUER.fullmatch(issuer)
    if m is None or m["tid"] == CONSUMERS_TENANT:
        return None
    return m["tid"]


def email_verified(claims: dict[str, Any], tenant: str) -> bool:
    """Whether verified ID-token `claims` from `tenant` vouch for their `email` (see the module text)."""
    return claims.get("tid") == tenant and claims.get("xms_edov") is True and isinstance(claims.get("email"), str)
