"""The broker's unit-test world: its public URL, preview hosts, keys and settings.

Shared by the broker's unit tests and the controller's cluster tests that run a broker app.
"""

from __future__ import annotations

from typing import Any

from broker.settings import BrokerSettings
from tests.support.fakeidp import CLIENT_ID, CLIENT_SECRET, ISSUER

PUBLIC = "https://auth.preview.example.com"
PR1 = "pr-1.preview.example.com"
PR2 = "pr-2.preview.example.com"
KEY_OLD = "old-key-" + "o" * 32
KEY_NEW = "new-key-" + "n" * 32


def make_settings(**overrides: Any) -> BrokerSettings:
    values: dict[str, Any] = {
        "public_url": PUBLIC,
        "preview_domains": ["preview.example.com"],
        "secret_keys": [KEY_NEW],
        "provider": "oidc",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "oidc_issuer": ISSUER,
        "allowed_hosts": [PR1, PR2],
        "allowed_email_domains": ["example.com"],
    }
    values.update(overrides)
    return BrokerSettings.model_validate(values)
