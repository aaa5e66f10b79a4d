"""The broker never treats a host it serves itself as a preview target (issue 25, item 1).

Whatever the allowlist says: a controller started without PUBLIC_URL (or an older one) may
publish `auth.<preview domain>` for a namespace that claimed it; the broker refuses it as a
login target, a relay return_to and a forward-auth host.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from foundation.config import ConfigError
from tests.support.brokerunit import PR1, PUBLIC, make_settings
from tests.support.flows import forward_auth

OWN = "auth.preview.example.com"


@pytest.fixture
def allowlist():  # type: ignore[no-untyped-def]
    from broker.allowlist import MutableAllowlist

    return MutableAllowlist({PR1, OWN})  # what a misconfigured controller published


@pytest.mark.parametrize("target", [f"https://{OWN}/oauth2/userinfo", f"https://{OWN.upper()}./x", f"https://{OWN}:443/"])
def test_the_broker_host_is_no_login_target(client, target: str) -> None:
    resp = client.get("/oauth2/start?" + urlencode({"rd": target, "pl": "A" * 43}))
    assert resp.status_code == 400, resp.headers
    assert "redirect_broker_host" in resp.text


def test_the_broker_host_is_no_relay_target(make_client) -> None:
    client = make_client(relay_client_ids=["app"])
    resp = client.get("/oauth2/relay?" + urlencode({"return_to": f"{PUBLIC}/cb", "client_id": "app",
                                                    "response_type": "code"}),
                      headers={"origin": PUBLIC})
    assert resp.status_code == 400
    assert "redirect_broker_host" in resp.text


def test_forward_auth_for_the_broker_host_is_refused(client) -> None:
    resp = forward_auth(client, f"https://{OWN}/", accept="text/html", query="?redirect=true")
    assert resp.status_code == 403
    assert "host_not_live" in resp.text


def test_a_static_allowlist_naming_the_broker_host_stops_start_up() -> None:
    with pytest.raises(ConfigError) as err:
        make_settings(allowed_hosts=[PR1, OWN.upper() + "."])
    assert err.value.setting == "PREVIEW_BROKER_ALLOWED_HOSTS"
    assert "PUBLIC_URL" in err.value.message
