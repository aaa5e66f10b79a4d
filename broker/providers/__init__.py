"""Identity providers behind one small interface (see base.Provider)."""

from __future__ import annotations

from broker.providers.base import Provider, Transports
from broker.settings import PROVIDERS, BrokerSettings


def make_provider(settings: BrokerSettings, transports: Transports | None = None) -> Provider:
    """`transports` makes the transport of each HTTP client (the metrics' instrumented one).

    One branch per kind of broker.settings.PROVIDERS; any other kind is refused, never taken for OIDC."""
    if settings.provider == "github":
        from broker.providers.github import GitHubProvider

        return GitHubProvider(settings, transports)
    if settings.provider == "oidc":
        from broker.providers.oidc import OIDCProvider

        return OIDCProvider(settings, transports)
    raise ValueError(f"unknown provider {settings.provider!r}; the known ones are {', '.join(PROVIDERS)}")
