"""Who logged in, and whether the operator's rules let them in (pure policy)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    email: str = ""
    email_verified: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Policy:
    email_domains: frozenset[str] = frozenset()  # "*" admits any verified email
    groups: frozenset[str] = frozenset()  # OIDC groups, GitHub orgs and "org/team" slugs, case-folded

    @classmethod
    def build(cls, email_domains: list[str], *group_lists: list[str]) -> Policy:
        groups = frozenset(g.casefold() for lst in group_lists for g in lst)
        return cls(frozenset(d.casefold() for d in email_domains), groups)

    def names_group(self, group: str) -> bool:
        """Whether the group rule names `group` (the one comparison authorize makes)."""
        return group.casefold() in self.groups


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def authorize(identity: Identity, policy: Policy) -> Decision:
    """Both configured rules must pass: email domain AND group membership."""
    if policy.email_domains:
        if not identity.email or not identity.email_verified:
            return Decision(False, "email_not_verified")
        domain = identity.email.rpartition("@")[2].casefold()
        if "*" not in policy.email_domains and domain not in policy.email_domains:
            return Decision(False, "email_domain_not_allowed")
    if policy.groups and not any(policy.names_group(g) for g in identity.groups):
        return Decision(False, "not_in_allowed_groups")
    return Decision(True, "ok")
