"""The command line: --version, check-config (the settings as the process would use them)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata

import pytest

BASE = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_PROVIDER": "oidc",
    "PREVIEW_BROKER_OIDC_ISSUER": "https://dex.example.com/dex",
    "PREVIEW_BROKER_CLIENT_ID": "preview-broker",
    "PREVIEW_BROKER_CLIENT_SECRET": "very-secret-value",
    "PREVIEW_BROKER_SECRET_KEYS": "k" * 40,
    "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com",
    "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    return subprocess.run([sys.executable, "-m", "preview_broker", *args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)


def test_version_is_the_package_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"preview-broker {metadata.version('preview-broker')}\n"


def test_check_config_prints_every_effective_setting_with_secrets_masked() -> None:
    proc = cli("check-config", "broker", **BASE, PREVIEW_BROKER_SESSION_TTL="12h")
    assert proc.returncode == 0, proc.stderr
    shown = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert shown["PREVIEW_BROKER_CLIENT_SECRET"] == "****" and shown["PREVIEW_BROKER_SECRET_KEYS"] == "****"
    assert shown["PREVIEW_BROKER_SESSION_TTL"] == "12h"
    assert shown["PREVIEW_BROKER_STATE_TTL"] == "10m" and shown["PREVIEW_BROKER_LOG_FORMAT"] == "json"  # defaults
    assert "very-secret-value" not in proc.stdout + proc.stderr and "k" * 40 not in proc.stdout
    assert proc.stderr == "preview-broker: the broker's settings are valid\n"


def test_check_config_of_the_controller_accepts_broker_settings_and_validates_its_own() -> None:
    ok = cli("check-config", "controller", **BASE, PREVIEW_BROKER_DEFAULT_TTL="72h")
    assert ok.returncode == 0 and "PREVIEW_BROKER_DEFAULT_TTL=3d\n" in ok.stdout
    bad = cli("check-config", "controller", **BASE, PREVIEW_BROKER_CLOSED_GRACE="soon")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("preview-broker: PREVIEW_BROKER_CLOSED_GRACE: ") and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("component", ["broker", "controller"])
def test_check_config_names_a_missing_setting_in_one_line(component) -> None:
    """PUBLIC_URL is one setting both read: the controller, too, stops without the broker's own URL (issue 25,
    item 1), before its start-up does anything else."""
    env = {k: v for k, v in BASE.items() if k != "PREVIEW_BROKER_PUBLIC_URL"}
    for command in (("check-config", component), (component,)):
        proc = cli(*command, **env)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == "preview-broker: PREVIEW_BROKER_PUBLIC_URL: is required but not set\n"
