"""foundation/settings.py: the settings both commands share are written once, and start-up names every bad
setting at once, one line each (issue 26)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.settings import BrokerSettings
from controller.settings import ControllerSettings
from foundation.config import ConfigError, load
from foundation.settings import SharedSettings

BROKER = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_SECRET_KEYS": "k" * 32,
    "PREVIEW_BROKER_PROVIDER": "oidc",
    "PREVIEW_BROKER_OIDC_ISSUER": "https://idp.example.org",
    "PREVIEW_BROKER_CLIENT_ID": "c",
    "PREVIEW_BROKER_CLIENT_SECRET": "s",
    "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com",
    "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
}
CONTROLLER = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
}


@pytest.mark.parametrize("component", [BrokerSettings, ControllerSettings])
def test_the_shared_settings_are_declared_once_in_the_base(component) -> None:
    assert issubclass(component, SharedSettings)
    own = vars(component).get("__annotations__", {})
    for name, field in SharedSettings.model_fields.items():
        assert name not in own, f"{component.__name__} declares {name} again"
        assert component.model_fields[name].description == field.description
        assert component.model_fields[name].default == field.default
    assert {"preview_domains", "extra_ca_certs", "log_level", "log_format"} <= set(SharedSettings.model_fields)


def test_both_components_use_the_one_comma_list_type() -> None:
    import broker.settings
    import controller.settings
    import foundation.settings

    assert broker.settings.CommaList is foundation.settings.CommaList is controller.settings.CommaList


def _problems(model, env, **kw) -> ConfigError:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        load(model, env, **kw)
    return err.value


# Several bad settings at once, of every kind the loader finds: a typo, a secret file it cannot read, values
# the fields refuse, a missing one; then, once every setting is valid alone, the checks between them.
CASES = [
    pytest.param(
        BrokerSettings,
        {**BROKER, "PREVIEW_BROKER_PUBLC_URL": "x", "PREVIEW_BROKER_CLIENT_SECRET": None,
         "PREVIEW_BROKER_CLIENT_SECRET_FILE": "/nonexistent/secret", "PREVIEW_BROKER_LOG_LEVEL": "loud",
         "PREVIEW_BROKER_PROVIDER": "gitlab", "PREVIEW_BROKER_STATE_TTL": "forever",
         "PREVIEW_BROKER_ALLOWED_PORTS": "70000", "PREVIEW_BROKER_CLIENT_ID": None},
        {"PREVIEW_BROKER_PUBLC_URL": "unknown setting",
         "PREVIEW_BROKER_CLIENT_SECRET_FILE": "cannot read /nonexistent/secret",
         "PREVIEW_BROKER_LOG_LEVEL": "'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
         "PREVIEW_BROKER_PROVIDER": "github, oidc",
         "PREVIEW_BROKER_STATE_TTL": "duration like 90s, 15m",
         "PREVIEW_BROKER_ALLOWED_PORTS": "65535",
         "PREVIEW_BROKER_CLIENT_ID": "is required but not set"},
        id="broker-fields",
    ),
    pytest.param(
        BrokerSettings,
        {**BROKER, "PREVIEW_BROKER_PUBLIC_URL": "http://auth.preview.example.com", "PREVIEW_BROKER_OIDC_ISSUER": None,
         "PREVIEW_BROKER_ALLOWED_HOSTS": "evil.example.com", "PREVIEW_BROKER_RELAY_CLIENT_IDS": "c",
         "PREVIEW_BROKER_GITHUB_TEAMS": "justateam"},
        {"PREVIEW_BROKER_PUBLIC_URL": "must be https",
         "PREVIEW_BROKER_OIDC_ISSUER": "is required when PROVIDER=oidc",
         "PREVIEW_BROKER_ALLOWED_HOSTS": "not under PREVIEW_DOMAINS",
         "PREVIEW_BROKER_RELAY_CLIENT_IDS": "never relayable",
         "PREVIEW_BROKER_GITHUB_TEAMS": "org/team-slug"},
        id="broker-combinations",
    ),
    pytest.param(
        ControllerSettings,
        {**CONTROLLER, "PREVIEW_BROKER_PREVIEW_DOMAINS": "", "PREVIEW_BROKER_CLOSED_GRACE": "soon",
         "PREVIEW_BROKER_LOG_FORMAT": "xml", "PREVIEW_BROKER_EXPIRY_ACTION": "explode"},
        {"PREVIEW_BROKER_PREVIEW_DOMAINS": "at least one",
         "PREVIEW_BROKER_CLOSED_GRACE": "duration like",
         "PREVIEW_BROKER_LOG_FORMAT": "'json' or 'text'",
         "PREVIEW_BROKER_EXPIRY_ACTION": "'delete' or 'revoke'"},
        id="controller-fields",
    ),
    pytest.param(
        ControllerSettings,
        {**CONTROLLER, "PREVIEW_BROKER_DATABASE_DEFAULT": "true", "PREVIEW_BROKER_BUCKET_DEFAULT": "true",
         "PREVIEW_BROKER_AUTH_WIRING": "traefik", "PREVIEW_BROKER_LEASE_DURATION": "15",
         "PREVIEW_BROKER_RENEW_DEADLINE": "20"},
        {"PREVIEW_BROKER_DATABASE_DEFAULT": "needs PREVIEW_BROKER_DATABASE_ENABLED=true",
         "PREVIEW_BROKER_BUCKET_DEFAULT": "needs PREVIEW_BROKER_BUCKET_ENABLED=true",
         "PREVIEW_BROKER_DATABASE_DESTINATION_PATH": "is required when DATABASE_DEFAULT=true",
         "PREVIEW_BROKER_BROKER_INTERNAL_URL": "is required when the controller generates auth wiring",
         "PREVIEW_BROKER_RENEW_DEADLINE": "must be less than LEASE_DURATION"},
        id="controller-combinations",
    ),
]


@pytest.mark.parametrize(("model", "env", "expected"), CASES)
def test_every_bad_setting_is_named_at_once_one_line_each(model, env, expected) -> None:
    env = {k: v for k, v in env.items() if v is not None}
    err = _problems(model, env)
    lines = str(err).splitlines()
    assert len(lines) == len(expected), lines
    named = {line.split(": ", 1)[0]: line for line in lines}
    assert set(named) == set(expected)
    for setting, words in expected.items():
        assert words in named[setting], named[setting]
    assert err.lines == lines and [e.setting for e in err.errors] == [line.split(": ", 1)[0] for line in lines]
    assert (err.setting, err.message) == (err.errors[0].setting, err.errors[0].message)


def test_a_setting_with_several_problems_gets_one_line_the_first() -> None:
    err = _problems(BrokerSettings, {**BROKER, "PREVIEW_BROKER_ALLOWED_HOSTS": "a.example.org, b.example.org"})
    assert str(err) == ("PREVIEW_BROKER_ALLOWED_HOSTS: a.example.org is not under PREVIEW_DOMAINS "
                        "(preview.example.com)")
    assert err.errors == (err,)


def test_one_bad_setting_is_still_exactly_one_line() -> None:
    err = _problems(ControllerSettings, {**CONTROLLER, "PREVIEW_BROKER_CLOSED_GRACE": "soon"})
    assert err.setting == "PREVIEW_BROKER_CLOSED_GRACE" and "\n" not in str(err)
    assert str(err) == f"{err.setting}: {err.message}" and err.lines == [str(err)]


def test_a_secret_file_problem_is_not_named_twice() -> None:
    env = {**BROKER, "PREVIEW_BROKER_CLIENT_SECRET_FILE": "/nonexistent/secret"}
    both = _problems(BrokerSettings, env)  # CLIENT_SECRET set as well
    assert both.lines == ["PREVIEW_BROKER_CLIENT_SECRET_FILE: set either PREVIEW_BROKER_CLIENT_SECRET or "
                          "PREVIEW_BROKER_CLIENT_SECRET_FILE, not both"]
    del env["PREVIEW_BROKER_CLIENT_SECRET"]
    unreadable = _problems(BrokerSettings, env)  # not "CLIENT_SECRET: is required" besides
    assert [e.setting for e in unreadable.errors] == ["PREVIEW_BROKER_CLIENT_SECRET_FILE"]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    return subprocess.run(command, capture_output=True, text=True, env={**clean, **env}, timeout=60)


@pytest.mark.parametrize(("model", "env", "expected"), [CASES[0], CASES[3]])
def test_check_config_and_start_up_print_every_bad_setting_and_exit_2(model, env, expected) -> None:
    env = {k: v for k, v in env.items() if v is not None}
    component = "broker" if model is BrokerSettings else "controller"
    script = str(Path(sys.executable).with_name("preview-broker"))  # the console script, as the image runs it
    for command in ([sys.executable, "-m", "preview_broker", "check-config", component], [script, component]):
        proc = _run(command, env)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == len(expected), lines
        assert all(line.startswith("preview-broker: PREVIEW_BROKER_") for line in lines), lines
        assert {line.split(": ")[1] for line in lines} == set(expected)
