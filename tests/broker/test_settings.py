"""Settings: typed, one-line errors naming each bad setting, --help covering every setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from broker.settings import BrokerSettings
from foundation.config import ConfigError, load

BASE = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_SECRET_KEYS": "k" * 32,
    "PREVIEW_BROKER_PROVIDER": "oidc",
    "PREVIEW_BROKER_OIDC_ISSUER": "https://idp.example.org",
    "PREVIEW_BROKER_CLIENT_ID": "c",
    "PREVIEW_BROKER_CLIENT_SECRET": "s",
    "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com, PR-2.preview.example.com.",
    "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
}


def test_valid_environment() -> None:
    s = load(BrokerSettings, BASE)
    assert s.allowed_hosts == ["pr-1.preview.example.com", "pr-2.preview.example.com"]
    assert s.callback_url == "https://auth.preview.example.com/oauth2/callback"
    assert s.relay_clients == frozenset()  # relay is off until RELAY_CLIENT_IDS names app clients
    assert s.forward_auth_proxy == "traefik" and s.allow_http is False


@pytest.mark.parametrize(
    ("change", "setting", "words"),
    [
        ({"PREVIEW_BROKER_PUBLIC_URL": None}, "PREVIEW_BROKER_PUBLIC_URL", "required"),
        ({"PREVIEW_BROKER_PUBLIC_URL": "auth.example.com"}, "PREVIEW_BROKER_PUBLIC_URL", "absolute URL"),
        ({"PREVIEW_BROKER_PUBLIC_URL": "http://auth.preview.example.com"}, "PREVIEW_BROKER_PUBLIC_URL", "https"),
        ({"PREVIEW_BROKER_SECRET_KEYS": "short"}, "PREVIEW_BROKER_SECRET_KEYS", "32"),
        ({"PREVIEW_BROKER_SECRET_KEYS": ""}, "PREVIEW_BROKER_SECRET_KEYS", "at least one"),
        ({"PREVIEW_BROKER_PROVIDER": "gitlab"}, "PREVIEW_BROKER_PROVIDER", "github"),
        ({"PREVIEW_BROKER_OIDC_ISSUER": None}, "PREVIEW_BROKER_OIDC_ISSUER", "PROVIDER=oidc"),
        ({"PREVIEW_BROKER_ALLOWED_HOSTS": "evil.com"}, "PREVIEW_BROKER_ALLOWED_HOSTS", "not under"),
        ({"PREVIEW_BROKER_ALLOWED_HOSTS": "a b"}, "PREVIEW_BROKER_ALLOWED_HOSTS", "not a host"),
        ({"PREVIEW_BROKER_ALLOWED_HOSTS": ""}, "PREVIEW_BROKER_ALLOWED_HOSTS", "empty"),
        ({"PREVIEW_BROKER_PREVIEW_DOMAINS": ""}, "PREVIEW_BROKER_PREVIEW_DOMAINS", "at least one"),
        ({"PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": None}, "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS", "authorization rule"),
        ({"PREVIEW_BROKER_STATE_TTL": "forever"}, "PREVIEW_BROKER_STATE_TTL", "duration like 90s, 15m"),
        ({"PREVIEW_BROKER_SESSION_TTL": "31d"}, "PREVIEW_BROKER_SESSION_TTL", "less than or equal"),
        ({"PREVIEW_BROKER_STATE_TTL": "5"}, "PREVIEW_BROKER_STATE_TTL", "greater"),
        ({"PREVIEW_BROKER_ALLOW_HTTP": "maybe"}, "PREVIEW_BROKER_ALLOW_HTTP", "boolean"),
        ({"PREVIEW_BROKER_ALLOWED_PORTS": "70000"}, "PREVIEW_BROKER_ALLOWED_PORTS", "65535"),
        ({"PREVIEW_BROKER_GITHUB_TEAMS": "justateam"}, "PREVIEW_BROKER_GITHUB_TEAMS", "org/team"),
        ({"PREVIEW_BROKER_PUBLC_URL": "x"}, "PREVIEW_BROKER_PUBLC_URL", "unknown setting"),
        ({"PREVIEW_BROKER_RELAY_CLIENT_IDS": "pr-app,c"}, "PREVIEW_BROKER_RELAY_CLIENT_IDS", "never relayable"),
        ({"PREVIEW_BROKER_FORWARD_AUTH_PROXY": "envoy"}, "PREVIEW_BROKER_FORWARD_AUTH_PROXY", "traefik"),
    ],
)
def test_bad_setting_names_itself(change, setting, words) -> None:
    env = {**BASE, **change}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, env)
    assert err.value.setting == setting
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_durations_take_the_one_syntax_both_components_share() -> None:
    s = load(BrokerSettings, {**BASE, "PREVIEW_BROKER_SESSION_TTL": "12h", "PREVIEW_BROKER_STATE_TTL": "10m",
                              "PREVIEW_BROKER_TICKET_TTL": "90"})
    assert (s.session_ttl, s.state_ttl, s.ticket_ttl) == (43200, 600, 90)


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, {**BASE, "PREVIEW_BROKER_SECRET_KEYS": "tooshort-secret"})
    assert "tooshort-secret" not in str(err.value)


def test_controller_settings_are_not_typos_for_the_broker() -> None:
    from controller.settings import ControllerSettings

    load(BrokerSettings, {**BASE, "PREVIEW_BROKER_DEFAULT_TTL": "72h"}, known=ControllerSettings.model_fields)


def test_config_file_is_overridden_by_environment(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("state_ttl: 120\nsession_ttl: 3600\n")
    s = load(BrokerSettings, {**BASE, "PREVIEW_BROKER_STATE_TTL": "300"}, config_file=f)
    assert (s.state_ttl, s.session_ttl) == (300, 3600)


def test_bad_config_file() -> None:
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, BASE, config_file=__import__("pathlib").Path("/nonexistent.yaml"))
    assert err.value.setting == "--config"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preview_broker", *args], capture_output=True, text=True, env=env or {"PATH": "/usr/bin"}
    )


def test_cli_missing_settings_are_one_line_each_exit_2() -> None:
    """Every required setting that is missing, at once (issue 26: no longer only the first)."""
    proc = _cli("broker")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"preview-broker: PREVIEW_BROKER_{name}: is required but not set"
        for name in ("PREVIEW_DOMAINS", "PUBLIC_URL", "SECRET_KEYS", "PROVIDER", "CLIENT_ID", "CLIENT_SECRET")
    ]


def test_cli_help_lists_every_setting() -> None:
    from controller.settings import ControllerSettings

    broker_help = _cli("broker", "--help").stdout
    controller_help = _cli("controller", "--help").stdout
    for name in BrokerSettings.model_fields:
        assert f"PREVIEW_BROKER_{name.upper()}" in broker_help
    for name in ControllerSettings.model_fields:
        assert f"PREVIEW_BROKER_{name.upper()}" in controller_help
    assert "PydanticUndefined" not in controller_help


def test_settings_that_weaken_a_rule_say_so_in_their_help() -> None:
    fields = BrokerSettings.model_fields
    for name in ("allow_http", "cookie_domain"):
        assert any(w in (fields[name].description or "") for w in ("WEAKENS", "RISKY")), name
    assert "never relayable" in (fields["relay_client_ids"].description or "")


@pytest.mark.parametrize("kind", ["gitlab", "OIDC", "github-enterprise", ""])
def test_an_unknown_provider_is_refused_with_the_known_ones(kind) -> None:
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, {**BASE, "PREVIEW_BROKER_PROVIDER": kind})
    assert err.value.lines == [f"PREVIEW_BROKER_PROVIDER: unknown provider; the known ones are github, oidc "
                               f"(got {kind!r})"]


def test_the_known_providers_are_the_kinds_make_provider_builds() -> None:
    """Nothing but github and oidc: a provider kind the settings do not know is never taken for OIDC."""
    from typing import get_args

    from broker.providers import make_provider
    from broker.settings import PROVIDERS, ProviderKind

    assert get_args(ProviderKind) == PROVIDERS == ("github", "oidc")
    built = {kind: type(make_provider(load(BrokerSettings, {**BASE, "PREVIEW_BROKER_PROVIDER": kind}))).__name__
             for kind in PROVIDERS}
    assert built == {"github": "GitHubProvider", "oidc": "OIDCProvider"}
    unknown = BrokerSettings.model_construct(**{**load(BrokerSettings, BASE).__dict__, "provider": "gitlab"})
    with pytest.raises(ValueError, match="unknown provider 'gitlab'; the known ones are github, oidc"):
        make_provider(unknown)
