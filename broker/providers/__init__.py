"""Identity providers behind one small interface (see base.Provider)."""

from __future__ import annotations

from broker.providers.base import Provider
from broker.settings import BrokerSettings


def make_provider(settings: BrokerSettings) -> Provider:
    if settings.provider == "github":
        from broker.providers.github import GitHubProvider

        return GitHubProvider(settings)
    from broker.providers.oidc import OIDCProvider

    return OIDCProvider(settings)
