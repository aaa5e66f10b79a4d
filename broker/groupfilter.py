"""Which of a user's groups a login carries: those the rules name, and those HEADER_GROUPS passes on.

Enterprise identity providers send hundreds of groups; the ticket link and the session cookie
have room for a few dozen.  Only two things ever read them: the authorization rule (its own
groups, orgs and teams) and the X-Auth-Request-Groups header (HEADER_GROUPS).  So the login
keeps exactly those, in the IdP's order, and nothing else travels (pure policy, no I/O).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from broker.identity import Identity, Policy

ALL = "*"


class GroupFilter:
    def __init__(self, policy: Policy, header_groups: Iterable[str] = ()) -> None:
        self._policy = policy
        entries = list(header_groups)
        self._all = ALL in entries
        # "team-*" passes every group that starts with "team-"; anything else is one exact name.
        self._prefixes = tuple(e[:-1] for e in entries if e.endswith("*") and e != ALL)
        self._exact = frozenset(e for e in entries if not e.endswith("*"))

    def keeps(self, group: str) -> bool:
        return (self._all or group in self._exact or group.startswith(self._prefixes)
                or self._policy.names_group(group))

    def carried(self, identity: Identity) -> Identity:
        """`identity` with only the groups that authorization or the identity headers read."""
        kept = tuple(dict.fromkeys(g for g in identity.groups if self.keeps(g)))
        if kept == identity.groups:
            return identity
        return replace(identity, groups=kept)
