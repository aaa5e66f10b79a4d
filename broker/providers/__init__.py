"""Identity providers behind one small interface (see base.Provider)."""

from __future__ import annotations

from broker.providers.base import Provider, Transports
from broker.settings import BrokerSettings


def make_provider(settings: BrokerSettings, transports: Transports | None = None) -> Provider:
    """`transports` makes the transport of each HTTP client (the metrics' instrumented one)."""
    if settings.provider == "github":
        from broker.providers.github import GitHubProvider

        return GitHubProvider(settings, transports)
    from broker.providers.oidc import OIDCProvider

    return OIDCProvider(settings, transports)
