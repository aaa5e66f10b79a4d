"""The database (CloudNativePG) and bucket (ACK) add-ons can be off: then the controller neither watches nor
writes their objects, so it needs no rights on them (issue 25, item 9; the chart's RBAC follows)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.main import build_extensions
from controller.policy import NamespaceView, plan, standing
from controller.reconciler import Controller
from controller.settings import ControllerSettings
from foundation import contract
from foundation.config import ConfigError, load

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BASE = {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
        "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
        "PREVIEW_BROKER_DATABASE_DESTINATION_PATH": "s3://backups/main"}
ASKS = {contract.ANN_DATABASE: "true", contract.ANN_BUCKET: "true"}


def settings(**env: str) -> ControllerSettings:
    return load(ControllerSettings, {**BASE, **{f"PREVIEW_BROKER_{k.upper()}": v for k, v in env.items()}})


def _plan(s: ControllerSettings, current=None):
    n = NamespaceView("pr-1", "uid-1", T0, False, {}, ASKS)
    st = standing(n, current=current, pr=None, application_gone=False, settings=s, now=T0)
    return plan(n, hosts=["pr-1.preview.example.com"], refused=[], current=current, observed={},
                settings=s, now=T0, standing=st)


def test_both_add_ons_are_off_by_default() -> None:
    s = settings()
    assert (s.database_enabled, s.bucket_enabled) == (False, False)


@pytest.mark.parametrize("addon", ["database", "bucket"])
def test_creating_an_add_ons_objects_by_default_needs_the_add_on_on(addon) -> None:
    with pytest.raises(ConfigError) as err:
        settings(**{f"{addon}_default": "true"})
    assert str(err.value) == (f"PREVIEW_BROKER_{addon.upper()}_DEFAULT: needs "
                              f"PREVIEW_BROKER_{addon.upper()}_ENABLED=true")
    assert settings(**{f"{addon}_default": "true", f"{addon}_enabled": "true"})


@pytest.mark.parametrize(
    ("enabled", "kinds", "ignored"),
    [
        ({}, [], ["database", "bucket"]),
        ({"database_enabled": "true"}, ["ObjectStore", "Cluster"], ["bucket"]),
        ({"bucket_enabled": "true"}, ["Bucket"], ["database"]),
        ({"database_enabled": "true", "bucket_enabled": "true"}, ["ObjectStore", "Cluster", "Bucket"], []),
    ],
)
def test_a_namespace_asking_for_an_add_on_that_is_off_gets_none_and_is_told_once(enabled, kinds, ignored) -> None:
    p = _plan(settings(**enabled))
    assert [o["kind"] for o in p.objects] == kinds
    warned = [e.message for e in p.events if e.reason == "AddonDisabled"]
    assert warned == [f"preview-broker.io/{a}=true ignored: the {a} add-on is off ({a.upper()}_ENABLED)"
                      for a in ignored]
    assert all(e.type == "Warning" for e in p.events if e.reason == "AddonDisabled")
    assert not [e for e in _plan(settings(**enabled), current=p.status).events if e.reason == "AddonDisabled"]
    assert p.status["phase"] == ("Ready" if not kinds else "Provisioning")


@pytest.mark.parametrize(
    ("enabled", "watched"),
    [
        ({}, set()),
        ({"database_enabled": "true"}, {"cnpg-clusters"}),
        ({"bucket_enabled": "true"}, {"ack-buckets"}),
        ({"database_enabled": "true", "bucket_enabled": "true"}, {"cnpg-clusters", "ack-buckets"}),
    ],
)
def test_an_add_on_that_is_off_is_not_watched_even_where_its_crds_are_served(enabled, watched) -> None:
    controller = Controller(kube=None, settings=settings(**enabled))  # type: ignore[arg-type]  # nothing is called
    controller.available_kinds = {"Cluster", "ObjectStore", "Bucket"}
    names = {w.name for w in controller._watchers()}
    assert names & {"cnpg-clusters", "ack-buckets"} == watched
    assert {"namespaces", "ingresses", "previewenvironments"} <= names


@pytest.mark.parametrize(("enabled", "janitor"), [({}, False), ({"bucket_enabled": "true"}, True)])
def test_the_bucket_janitor_runs_only_with_the_bucket_add_on(enabled, janitor) -> None:
    s = settings(**enabled)
    controller = Controller(kube=None, settings=s)  # type: ignore[arg-type]
    kinds = [type(e).__name__ for e in build_extensions(s, None, controller, None)]  # type: ignore[arg-type]
    assert ("BucketJanitor" in kinds) is janitor
