"""Who logged in, and whether the operator's rules let them in (pure policy)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from foundation.hosts import InvalidHost, normalize_host


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    email: str = ""
    email_verified: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)
    # The IdP said the user has groups but left them out of the token (Entra's "groups overage":
    # `_claim_names`/`hasgroups`), so `groups` is not the user's list and "not in group" would be a lie.
    groups_overage: bool = False


def email_domain(email: str) -> str | None:
    """The domain of `email` as an IDNA A-label (ASCII, lower case, no trailing dot), or None when
    the address has no local part or its domain is not a valid IDNA host name.

    Domains compare as DNS compares them, never as case-folded text: 'ß'.casefold() is 'ss', so
    casefolding made glaßworks.example pass a rule for glassworks.example, though the two are
    different names owned by different people.  UTS-46 non-transitional processing (what browsers
    and DNS resolvers do today) keeps ß, ς and the dotless ı as letters of their own
    (glaßworks → xn--glaworks-sya).  It does map full-width letters and upper case to their ASCII
    forms: ada@ｅｘａｍｐｌｅ.com is delivered to the same DNS name, and so to the same mail servers,
    as ada@example.com, so it is the same domain and not a look-alike of it.

    A trailing dot is refused rather than removed: RFC 5321's mailbox grammar has none, so no
    provider verifies such an address, and accepting it would give one mailbox two spellings.
    """
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or domain.endswith("."):
        return None
    try:
        return normalize_host(domain)
    except InvalidHost:
        return None


def email_domain_rule(entry: str) -> str:
    """One ALLOWED_EMAIL_DOMAINS entry as the A-label authorize compares with, or ValueError.

    Operator text may be Unicode or punycode, any case, with a trailing dot (as host settings may).
    """
    if entry == "*":
        return entry
    try:
        return normalize_host(entry)
    except InvalidHost as exc:
        raise ValueError(f"{entry!r} is not a domain name: {exc}") from None


@dataclass(frozen=True, slots=True)
class Policy:
    email_domains: frozenset[str] = frozenset()  # IDNA A-labels; "*" admits any verified email
    # OIDC groups: exact strings.  A group name or id is an identifier the IdP compares exactly; case or
    # Unicode folding would let a group someone may create ("Straße", "\u212aube" with a KELVIN SIGN)
    # satisfy a rule written for another ("strasse", "kube").
    groups: frozenset[str] = frozenset()
    # GitHub org logins and "org/team" slugs, ASCII lower case: GitHub itself treats them
    # case-insensitively (ASCII only: its names are letters, digits and hyphens).
    github_groups: frozenset[str] = frozenset()

    @classmethod
    def build(cls, email_domains: Iterable[str], groups: Iterable[str] = (), github_groups: Iterable[str] = ()) -> Policy:
        return cls(frozenset(email_domain_rule(d) for d in email_domains), frozenset(groups),
                   frozenset(g.lower() for g in github_groups if g.isascii()))

    @property
    def needs_groups(self) -> bool:
        return bool(self.groups or self.github_groups)

    def names_group(self, group: str) -> bool:
        """Whether the group rule names `group` (the one comparison authorize makes)."""
        return group in self.groups or (group.isascii() and group.lower() in self.github_groups)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


# What each refusal means, in words the refused user can act on (the login page shows them).
REFUSAL_TEXT = {
    "email_not_verified": "your identity provider did not say that your email address is verified.",
    "email_domain_invalid": "the domain of your email address is not a valid domain name.",
    "email_domain_not_allowed": "your email address's domain is not one the administrator allows.",
    "not_in_allowed_groups": "you are not in any group the administrator allows.",
    "groups_overage": "you are in more groups than your identity provider fits into a login token, so it "
    "sent none of them and membership cannot be checked. Ask an administrator to have the identity provider "
    "send only the groups assigned to this application (Microsoft Entra ID: app registration, Token "
    "configuration, groups claim \"Groups assigned to the application\").",
}


def authorize(identity: Identity, policy: Policy) -> Decision:
    """Both configured rules must pass: email domain AND group membership."""
    if policy.email_domains:
        if not identity.email or not identity.email_verified:
            return Decision(False, "email_not_verified")
        domain = email_domain(identity.email)
        if domain is None:
            return Decision(False, "email_domain_invalid")
        if "*" not in policy.email_domains and domain not in policy.email_domains:
            return Decision(False, "email_domain_not_allowed")
    if policy.needs_groups and not any(policy.names_group(g) for g in identity.groups):
        return Decision(False, "groups_overage" if identity.groups_overage else "not_in_allowed_groups")
    return Decision(True, "ok")
