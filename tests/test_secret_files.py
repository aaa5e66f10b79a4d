"""Secrets from files (<NAME>_FILE, a mounted Secret): read, checked, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.settings import BrokerSettings
from controller.settings import ControllerSettings
from foundation.config import ConfigError, describe, effective, load

KEY_A, KEY_B = "a" * 40, "b" * 40
BASE = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_PROVIDER": "github",
    "PREVIEW_BROKER_CLIENT_ID": "Iv1.abc",
    "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com",
    "PREVIEW_BROKER_GITHUB_ORGS": "acme",
}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_client_secret_and_keys_come_from_files(tmp_path) -> None:
    env = {**BASE, "PREVIEW_BROKER_CLIENT_SECRET_FILE": write(tmp_path, "client-secret", "s3cret\n"),
           "PREVIEW_BROKER_SECRET_KEYS_FILE": write(tmp_path, "secret-keys", f"{KEY_A}\n{KEY_B}\n")}
    settings = load(BrokerSettings, env)
    assert settings.client_secret == "s3cret"  # the file's final line break is not part of it
    assert settings.secret_keys == [KEY_A, KEY_B]  # one a line, newest last


def test_a_comma_list_in_the_keys_file_works_too(tmp_path) -> None:
    env = {**BASE, "PREVIEW_BROKER_CLIENT_SECRET": "s",
           "PREVIEW_BROKER_SECRET_KEYS_FILE": write(tmp_path, "k", f"{KEY_A},{KEY_B}")}
    assert load(BrokerSettings, env).secret_keys == [KEY_A, KEY_B]


def test_the_github_token_comes_from_a_file(tmp_path) -> None:
    env = {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
           "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
           "PREVIEW_BROKER_GITHUB_TOKEN_FILE": write(tmp_path, "token", "ghp_x\n")}
    assert load(ControllerSettings, env).github_token == "ghp_x"


@pytest.mark.parametrize(
    ("path", "message"),
    [("/nonexistent/client-secret", "cannot read /nonexistent/client-secret: No such file or directory"),
     ("/", "cannot read /: Is a directory"),
     ("", "is empty; set it to the path of a file holding the secret")],
)
def test_a_bad_path_is_one_line_naming_the_file_setting(path, message) -> None:
    env = {**BASE, "PREVIEW_BROKER_SECRET_KEYS": KEY_A, "PREVIEW_BROKER_CLIENT_SECRET_FILE": path}
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, env)
    assert str(err.value) == f"PREVIEW_BROKER_CLIENT_SECRET_FILE: {message}"


def test_a_bad_value_in_a_file_names_the_file_and_never_shows_the_value(tmp_path) -> None:
    path = write(tmp_path, "secret-keys", "too-short-key\n")
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, {**BASE, "PREVIEW_BROKER_CLIENT_SECRET": "s", "PREVIEW_BROKER_SECRET_KEYS_FILE": path})
    assert str(err.value).startswith(f"PREVIEW_BROKER_SECRET_KEYS_FILE ({path}): every key must be at least 32")
    assert "too-short-key" not in str(err.value) and "\n" not in str(err.value)


def test_both_the_value_and_its_file_is_refused(tmp_path) -> None:
    env = {**BASE, "PREVIEW_BROKER_SECRET_KEYS": KEY_A, "PREVIEW_BROKER_CLIENT_SECRET": "s",
           "PREVIEW_BROKER_CLIENT_SECRET_FILE": write(tmp_path, "c", "t")}
    with pytest.raises(ConfigError, match="set either PREVIEW_BROKER_CLIENT_SECRET or PREVIEW_BROKER_CLIENT_SECRET_FILE"):
        load(BrokerSettings, env)


def test_only_secrets_have_a_file_form() -> None:
    with pytest.raises(ConfigError, match="PREVIEW_BROKER_CLIENT_ID_FILE: unknown setting"):
        load(BrokerSettings, {**BASE, "PREVIEW_BROKER_CLIENT_ID_FILE": "/x"})


def test_a_config_file_may_name_the_secret_files(tmp_path) -> None:
    config = tmp_path / "broker.yaml"
    config.write_text(f"client_secret_file: {write(tmp_path, 'c', 'from-file')}\nsecret_keys: [{KEY_A}]\n")
    assert load(BrokerSettings, BASE, config_file=config).client_secret == "from-file"


def test_help_and_effective_settings_mention_files_and_mask_secrets(tmp_path) -> None:
    assert "Or PREVIEW_BROKER_CLIENT_SECRET_FILE: the path of a file holding it." in describe(BrokerSettings)
    assert "PREVIEW_BROKER_GITHUB_TOKEN_FILE" in describe(ControllerSettings)
    settings = load(BrokerSettings, {**BASE, "PREVIEW_BROKER_CLIENT_SECRET": "s3cret",
                                     "PREVIEW_BROKER_SECRET_KEYS": f"{KEY_A},{KEY_B}",
                                     "PREVIEW_BROKER_SESSION_TTL": "12h"})
    shown = effective(settings)
    assert shown["PREVIEW_BROKER_CLIENT_SECRET"] == "****"
    assert shown["PREVIEW_BROKER_SECRET_KEYS"] == "****,****"
    assert shown["PREVIEW_BROKER_SESSION_TTL"] == "12h" and shown["PREVIEW_BROKER_ALLOW_HTTP"] == "false"
    assert not [v for v in shown.values() if "s3cret" in v or KEY_A in v]
