"""The broker process the integration tests run (`preview-broker broker` on loopback, http dev mode,
static allowlist, the real Dex): where it listens and its environment."""

from __future__ import annotations

from tests.support.procs import free_port

BROKER_PORT = free_port()
BROKER_METRICS_PORT = free_port()
PUBLIC = f"http://auth.localhost:{BROKER_PORT}"


def broker_env(**overrides: str) -> dict[str, str]:
    from tests.support.dex import APP_CLIENT_ID, DEX_CLIENT_ID, DEX_CLIENT_SECRET

    env = {
        "PREVIEW_BROKER_PUBLIC_URL": PUBLIC,
        "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.localhost",
        "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.localhost,pr-2.preview.localhost",
        "PREVIEW_BROKER_ALLOWED_PORTS": str(BROKER_PORT),
        "PREVIEW_BROKER_ALLOW_HTTP": "true",
        "PREVIEW_BROKER_PROVIDER": "oidc",
        "PREVIEW_BROKER_CLIENT_ID": DEX_CLIENT_ID,
        "PREVIEW_BROKER_CLIENT_SECRET": DEX_CLIENT_SECRET,
        "PREVIEW_BROKER_SECRET_KEYS": "integration-test-key-" + "x" * 32,
        "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
        "PREVIEW_BROKER_RELAY_CLIENT_IDS": APP_CLIENT_ID,
    }
    env.update(overrides)
    return env
