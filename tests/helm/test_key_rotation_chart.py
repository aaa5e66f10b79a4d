"""VERIFY_KEYS in the chart (issue 25, item 8): keys that verify but never sign reach the broker as a mounted
file of its Secret, like SECRET_KEYS, so the three stages of docs/operations.md are three `helm upgrade`s."""

from __future__ import annotations

import pytest

from broker.settings import BrokerSettings
from foundation.config import load
from tests.support.helm import CHART, helm, render

OIDC = CHART / "ci" / "oidc-values.yaml"
OLD = "ci-signing-key-0123456789abcdef0123456789"  # the ci values' signing key
NEW = "new-signing-key-0123456789abcdef012345678"
MOUNT = "/etc/preview-broker/secrets"


def broker(docs: list[dict]) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-broker"))


def env_of(dep: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def mounted_items(dep: dict) -> list[str]:
    volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "secrets")
    return [i["key"] for i in volume["secret"]["items"]]


def started_broker_settings(docs: list[dict], tmp_path) -> BrokerSettings:
    """Load the broker's settings as its pod would: the Secret's keys as files, the env pointing at them."""
    secret = next(d for d in docs if d["kind"] == "Secret")
    for key, text in secret["stringData"].items():
        (tmp_path / key).write_text(text)
    env = {k: v.replace(MOUNT, str(tmp_path)) for k, v in env_of(broker(docs)).items()}
    return load(BrokerSettings, env)


@pytest.mark.parametrize(
    ("sets", "secret_keys", "verify_keys"),
    [
        ((), [OLD], []),  # outside a rotation: an empty verify-keys file
        ((f"secrets.verifyKeys={{{NEW}}}",), [OLD], [NEW]),  # stage 1: verifies only
        ((f"secrets.secretKeys={{{OLD},{NEW}}}",), [OLD, NEW], []),  # stage 2: the last key signs
        ((f"secrets.secretKeys={{{NEW}}}",), [NEW], []),  # stage 3: the old key is gone
    ],
    ids=["steady", "stage-1", "stage-2", "stage-3"],
)
def test_each_rotation_stage_reaches_the_broker_from_the_chart_secret(sets, secret_keys, verify_keys, tmp_path) -> None:
    docs = render(OIDC, *sets)
    dep = broker(docs)
    assert env_of(dep)["PREVIEW_BROKER_VERIFY_KEYS_FILE"] == f"{MOUNT}/verify-keys"
    assert "PREVIEW_BROKER_VERIFY_KEYS" not in env_of(dep)  # a file, never the environment
    assert mounted_items(dep) == ["client-secret", "secret-keys", "verify-keys"]
    settings = started_broker_settings(docs, tmp_path)
    assert (settings.secret_keys, settings.verify_keys) == (secret_keys, verify_keys)


def test_a_changed_verify_key_rolls_the_brokers() -> None:
    def checksum(*sets: str) -> str:
        return broker(render(OIDC, *sets))["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]

    assert checksum() != checksum(f"secrets.verifyKeys={{{NEW}}}")


@pytest.mark.parametrize(("sets", "mounted"), [((), False), (("secrets.existingSecretVerifyKeys=true",), True)])
def test_an_existing_secret_provides_verify_keys_only_when_the_values_say_it_has_them(sets, mounted) -> None:
    """A Secret without the key would keep the pods from starting: an existing one is read for it on request."""
    dep = broker(render(OIDC, "secrets.existingSecret=mine", *sets))
    assert ("PREVIEW_BROKER_VERIFY_KEYS_FILE" in env_of(dep)) is mounted
    assert ("verify-keys" in mounted_items(dep)) is mounted


def test_a_key_both_verify_only_and_signing_is_refused() -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(OIDC), "--set", f"secrets.verifyKeys={{{OLD}}}", check=False)
    assert proc.returncode != 0 and "secrets.verifyKeys names a key that secrets.secretKeys has too" in proc.stderr


@pytest.mark.parametrize("bad_set", ["secrets.verifyKeys={short}", "secrets.existingSecretVerifyKeys=yes"])
def test_the_schema_refuses_short_verify_keys(bad_set) -> None:
    proc = helm("template", "pb", str(CHART), "-f", str(OIDC), "--set", bad_set, check=False)
    assert proc.returncode != 0 and "values don't meet" in proc.stderr.lower()
