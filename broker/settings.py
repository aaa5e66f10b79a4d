"""The broker's settings: names, types, defaults and help, in one place (those it shares with the controller
in foundation/settings.py)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator

from broker.identity import email_domain_rule
from foundation.config import SECRET, Problems, split_list
from foundation.durations import Duration
from foundation.hosts import InvalidHost, is_under, normalize_host
from foundation.settings import CommaList, SharedSettings

PortList = Annotated[list[int], BeforeValidator(split_list)]
# The identity provider kinds (broker/providers: make_provider has one for each).
PROVIDERS = ("github", "oidc")
ProviderKind = Literal["github", "oidc"]


def _known_provider(value: object) -> object:
    """An unknown PROVIDER is refused with the list of the known ones."""
    if isinstance(value, str) and value not in PROVIDERS:
        raise ValueError(f"unknown provider; the known ones are {', '.join(PROVIDERS)}")
    return value


class BrokerSettings(SharedSettings):

    public_url: str = Field(
        description="The broker's own URL, e.g. https://auth.preview.example.com. "
        "The IdP redirect URI to register is <PUBLIC_URL>/oauth2/callback."
    )
    secret_keys: CommaList = Field(
        description="Comma list of signing keys (>= 32 characters each), newest last. "
        "Add a new key at the end to rotate; tokens signed with older keys still verify. "
        "In a file: one key a line, or a comma list.",
        json_schema_extra=SECRET,
    )
    verify_keys: CommaList = Field(
        default=[],
        description="Comma list of keys (>= 32 characters each) that verify tokens but never sign them: the first "
        "stage of a key rotation during a rolling update. Add the new key here on every replica first; once all "
        "run with it, move it to the end of SECRET_KEYS (docs/operations.md, key rotation).",
        json_schema_extra=SECRET,
    )
    provider: Annotated[ProviderKind, BeforeValidator(_known_provider)] = Field(
        description="Identity provider kind: github or oidc."
    )
    client_id: str = Field(min_length=1, description="OAuth client id registered at the identity provider.")
    client_secret: str = Field(min_length=1, description="OAuth client secret.", json_schema_extra=SECRET)
    oidc_issuer: str = Field(
        default="", description="OIDC issuer URL (discovery at <issuer>/.well-known/openid-configuration)."
    )
    oidc_scopes: CommaList = Field(
        default=["openid", "email", "profile", "groups"], description="Scopes requested in gate mode (OIDC)."
    )
    oidc_groups_claim: str = Field(default="groups", description="ID-token/userinfo claim that lists groups.")
    oidc_email_verified: Literal["claim", "entra"] = Field(
        default="claim",
        description="How an OIDC email address counts as verified for ALLOWED_EMAIL_DOMAINS. claim: only when "
        "the ID token says email_verified: true. entra WEAKENS that to Microsoft Entra ID's own signal (Entra never "
        "sends email_verified): "
        "only with a single-tenant issuer (https://login.microsoftonline.com/<tenant id>/v2.0, never "
        "common/organizations/consumers), and only when the token's tid is that tenant and its optional claim "
        "xms_edov (email domain owner verified) is true. Add the optional claims email and xms_edov to the "
        "app registration.",
    )
    github_url: str = Field(
        default="https://github.com", description="GitHub (Enterprise) web URL; the API is derived from it."
    )
    allowlist_source: Literal["static", "kubernetes"] = Field(
        default="static", description="Where live preview hosts come from: static (ALLOWED_HOSTS) or kubernetes."
    )
    allowed_hosts: CommaList = Field(
        default=[], description="Static allowlist of preview hosts (ALLOWLIST_SOURCE=static)."
    )
    allowed_ports: PortList = Field(
        default=[], description="Extra ports allowed in redirect targets besides 443 (and 80 with ALLOW_HTTP)."
    )
    allow_http: bool = Field(
        default=False,
        description="WEAKENS SECURITY, local development only: accept http:// URLs and set non-Secure cookies. "
        "Without it a preview request over plain http never gets a session cookie.",
    )
    allowed_email_domains: CommaList = Field(
        default=[], description="Gate mode: email domains allowed in (* = any verified email), compared as IDNA "
        "A-labels (glaßworks.example is xn--glaworks-sya.example, not glassworks.example); an address whose domain "
        "is not valid IDNA is refused."
    )
    allowed_groups: CommaList = Field(
        default=[], description="Gate mode (OIDC): user must be in one of these groups, compared exactly (case too)."
    )
    github_orgs: CommaList = Field(
        default=[], description="Gate mode (GitHub): user must be in one of these orgs (case-insensitive, as GitHub)."
    )
    github_teams: CommaList = Field(
        default=[], description="Gate mode (GitHub): user must be in one of these teams (org/team-slug)."
    )
    header_groups: CommaList = Field(
        default=[],
        description="Which of the user's groups X-Auth-Request-Groups names, besides those the rules name "
        "(ALLOWED_GROUPS, GITHUB_ORGS, GITHUB_TEAMS): exact names, prefixes ending in * (team-*), or * for every "
        "group. Only these and the rules' groups are carried by the login: a login whose groups do not fit a "
        "cookie is refused with a page naming this setting.",
    )
    relay_client_ids: CommaList = Field(
        default=[],
        description="Relay mode is off until this names the preview apps' own OAuth client ids. Every preview "
        "of such a client can receive login codes for it (see docs/security.md). CLIENT_ID, the broker's own "
        "gate client, is never relayable.",
    )
    forward_auth_proxy: Literal["traefik", "nginx"] = Field(
        default="traefik",
        description="The proxy in front of forward auth, whose headers alone name the preview request: traefik "
        "(X-Forwarded-Proto/-Host/-Uri/-Method, which Traefik's ForwardAuth overwrites) or nginx (X-Original-URL "
        "and X-Original-Method, which ingress-nginx's auth-url sets). Headers of the other kind are ignored: a "
        "client may send them.",
    )
    ext_auth_prefix: str = Field(
        default="/oauth2/ext",
        description="Path prefix of Gateway API external-auth checks (GEP-1494 HTTP, Envoy ext_authz): the "
        "gateway appends the original path to it, sends the original Host and method, and gets 200 to allow.",
    )
    oidc_username_claim: str = Field(
        default="preferred_username",
        description="ID-token claim the identity provider asserts as the user name (X-Auth-Request-User). "
        "Empty: the verified email, else sub. Never a display name.",
    )
    state_ttl: Duration = Field(default=600, ge=30, le=3600,
                                description="How long a login may take at the IdP (30s to 1h; e.g. 10m).")
    ticket_ttl: Duration = Field(default=60, ge=5, le=600,
                                 description="How long a post-login ticket is valid (5s to 10m).")
    session_ttl: Duration = Field(default=43200, ge=60, le=30 * 86400,
                                  description="How long a gate-mode session lasts (1m to 30d; e.g. 12h).")
    cookie_domain: str = Field(
        default="",
        description="RISKY, off by default: a parent domain for the session cookie so one login covers every "
        "preview. Preview apps run untrusted PR code and would all receive that cookie.",
    )
    idp_timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds to wait for the IdP.")
    header_timeout: Duration = Field(
        default=5, ge=1, le=60,
        description="How long a client may take to send a request's headers (1s to 1m): from connecting, or from "
        "the first byte of a later request on a kept-alive connection. Slower connections are closed, so clients "
        "that trickle headers cannot hold sockets.",
    )
    max_connections: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Most connections served at once; one more is answered 503 at once and closed. Start-up checks "
        "that the open-file limit (RLIMIT_NOFILE) leaves room for it.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute URL like https://auth.preview.example.com")
        if parts.query or parts.fragment or parts.username:
            raise ValueError("must not carry a query, fragment or userinfo")
        return v.rstrip("/")

    @field_validator("ext_auth_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.rstrip("/")
        if not v.startswith("/oauth2/") or "?" in v or "#" in v or "//" in v:
            raise ValueError("must be a path under /oauth2/, like /oauth2/ext")
        if v in ("/oauth2/auth", "/oauth2/start", "/oauth2/relay", "/oauth2/callback", "/oauth2/ticket",
                 "/oauth2/sign_out", "/oauth2/userinfo"):
            raise ValueError("must not be one of the broker's own endpoints")
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for h in v:
            try:
                out.append(normalize_host(h))
            except InvalidHost as exc:
                raise ValueError(f"{h!r} is not a host name: {exc}") from None
        return out

    @field_validator("allowed_email_domains")
    @classmethod
    def _email_domains(cls, v: list[str]) -> list[str]:
        # Compared as IDNA A-labels (broker/identity.py), so written down as one at start-up.
        return [email_domain_rule(d) for d in v]

    @field_validator("github_orgs", "github_teams")
    @classmethod
    def _github_names(cls, v: list[str]) -> list[str]:
        if not all(name.isascii() for name in v):
            raise ValueError("GitHub org and team names are ASCII letters, digits and hyphens")
        return v

    @field_validator("secret_keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one key (generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if any(len(k) < 32 for k in v):
            raise ValueError("every key must be at least 32 characters")
        return v

    @field_validator("verify_keys")
    @classmethod
    def _verify_keys(cls, v: list[str]) -> list[str]:
        if any(len(k) < 32 for k in v):
            raise ValueError("every key must be at least 32 characters")
        return v

    @field_validator("allowed_ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        if any(not 0 < p < 65536 for p in v):
            raise ValueError("ports must be between 1 and 65535")
        return v

    def check_combinations(self, fail: Problems) -> None:
        from broker.providers.entra import tenant_of  # here: broker.providers imports this module

        if urlsplit(self.public_url).scheme == "http" and not self.allow_http:
            fail("public_url", "must be https (http only with PREVIEW_BROKER_ALLOW_HTTP=true, for local development)")
        if self.provider == "oidc" and not self.oidc_issuer:
            fail("oidc_issuer", "is required when PROVIDER=oidc")
        if self.oidc_issuer and urlsplit(self.oidc_issuer).scheme not in ("https", "http"):
            fail("oidc_issuer", "must be an http(s) URL")
        if self.oidc_email_verified == "entra" and (self.provider != "oidc" or tenant_of(self.oidc_issuer) is None):
            fail("oidc_email_verified", "entra needs PROVIDER=oidc and OIDC_ISSUER of one tenant, "
                 "https://login.microsoftonline.com/<tenant id>/v2.0; common, organizations and consumers admit "
                 "accounts whose email any tenant's administrator sets")
        if set(self.verify_keys) & set(self.secret_keys):
            fail("verify_keys", "names a key that SECRET_KEYS has too; a key is either verify-only (here) or "
                 "signing and verifying (SECRET_KEYS), not both")
        domains = tuple(self.preview_domains)
        try:
            own = self.public_host
        except InvalidHost:  # an IP address or a single label (local development): no preview host equals it
            own = ""
        for h in self.allowed_hosts:
            if h == own:
                fail("allowed_hosts", f"names {h}, the broker's own host (PUBLIC_URL): it is never a preview")
            if not is_under(h, domains):
                fail("allowed_hosts", f"{h} is not under PREVIEW_DOMAINS ({', '.join(domains)})")
        if self.allowlist_source == "static" and not self.allowed_hosts:
            fail("allowed_hosts", "is empty; with ALLOWLIST_SOURCE=static list the preview hosts here")
        if not (self.allowed_email_domains or self.allowed_groups or self.github_orgs or self.github_teams):
            fail(
                "allowed_email_domains",
                "no authorization rule set; set ALLOWED_EMAIL_DOMAINS (or '*' to admit every verified user), "
                "ALLOWED_GROUPS, GITHUB_ORGS or GITHUB_TEAMS",
            )
        if self.client_id in self.relay_client_ids:
            fail("relay_client_ids", f"names CLIENT_ID ({self.client_id}): the gate client is never relayable; "
                 "list only the preview apps' own client ids")
        if any("/" not in t for t in self.github_teams):
            fail("github_teams", "entries must look like org/team-slug")
        if self.cookie_domain:
            try:
                normalize_host(self.cookie_domain)
            except InvalidHost:
                fail("cookie_domain", "must be a parent domain like preview.example.com")

    # Derived values, computed once.
    @property
    def callback_url(self) -> str:
        return self.public_url + "/oauth2/callback"

    @property
    def public_host(self) -> str:
        return normalize_host(urlsplit(self.public_url).hostname or "")

    @property
    def relay_clients(self) -> frozenset[str]:
        return frozenset(self.relay_client_ids)

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"
