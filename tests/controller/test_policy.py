"""Pure lifecycle policy: hosts, claims, expiry, readiness, phases and events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from broker.config import ConfigError, load
from controller import names, resources
from controller.policy import (
    ClaimIndex,
    IngressView,
    NamespaceView,
    bucket_ready,
    candidate_hosts,
    database_ready,
    expiry,
    plan,
    validate_hosts,
)
from controller.settings import ControllerSettings, parse_duration

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DOMAINS = ("preview.example.com",)


def settings(**kw) -> ControllerSettings:
    return ControllerSettings.model_validate({"preview_domains": ["preview.example.com"], **kw})


def ns(name="pr-1", created=T0, deleting=False, labels=None, annotations=None) -> NamespaceView:
    return NamespaceView(name, f"uid-{name}", created, deleting, labels or {}, annotations or {})


def test_candidates_from_annotation_and_ingresses() -> None:
    n = ns(annotations={names.ANN_HOST: "pr-1.preview.example.com"})
    ings = [IngressView("web", ("api.pr-1.preview.example.com",), False), IngressView("x", ("x.preview.example.com",), True)]
    assert [h for h, _ in candidate_hosts(n, ings, "all")] == [
        "pr-1.preview.example.com", "api.pr-1.preview.example.com", "x.preview.example.com"]
    assert [h for h, _ in candidate_hosts(n, ings, "annotated")] == ["pr-1.preview.example.com", "x.preview.example.com"]


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("pr-1.preview.example.com", True), ("PR-1.Preview.Example.com.", True), ("evil.com", False),
     ("preview.example.com", False), ("pr-1.preview.example.com.evil.com", False), ("bad host", False),
     ("xpreview.example.com", False), ("*.preview.example.com", False)],
)
def test_hosts_must_sit_under_preview_domains(raw, ok) -> None:
    valid, refused = validate_hosts([(raw, "annotation")], DOMAINS)
    assert bool(valid) is ok and bool(refused) is not ok


def test_claims_oldest_namespace_wins_and_release_hands_over() -> None:
    idx = ClaimIndex()
    h = "pr-1.preview.example.com"
    assert idx.update("new", T0 + timedelta(hours=1), [h]) == set()
    assert idx.update("old", T0, [h]) == {"new"}
    assert idx.owner(h) == "old"
    assert idx.remove("old") == {"new"}
    assert idx.owner(h) == "new"
    assert idx.remove("new") == set() and idx.owner(h) is None


@pytest.mark.parametrize(
    ("labels", "annotations", "default", "expected"),
    [
        ({}, {}, None, None),
        ({}, {}, 3600.0, T0 + timedelta(hours=1)),
        ({}, {names.ANN_TTL: "72h"}, 3600.0, T0 + timedelta(hours=72)),
        ({}, {names.ANN_EXPIRES_AT: "2026-12-01T00:00:00Z"}, 3600.0, datetime(2026, 12, 1, tzinfo=UTC)),
        ({names.LABEL_KEEP: "true"}, {names.ANN_TTL: "1h"}, 3600.0, None),
        ({}, {names.ANN_TTL: "soon"}, 60.0, T0 + timedelta(seconds=60)),
    ],
)
def test_expiry(labels, annotations, default, expected) -> None:
    at, _ = expiry(ns(labels=labels, annotations=annotations), default)
    assert at == expected


def test_bad_ttl_warns() -> None:
    _, warning = expiry(ns(annotations={names.ANN_TTL: "soon"}), None)
    assert warning is not None and warning.type == "Warning"


@pytest.mark.parametrize(("text", "seconds"), [("72h", 259200), ("1d12h", 129600), ("90m", 5400), ("30s", 30)])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "72", "1y", "-1h"])
def test_parse_duration_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _cluster(phase, ready):
    return {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}


@pytest.mark.parametrize(
    ("obj", "ok"),
    [(None, False), (_cluster("Cluster in healthy state", "True"), True),
     (_cluster("Cluster in healthy state", "False"), False), (_cluster("Setting up primary", "True"), False)],
)
def test_database_ready_needs_phase_and_condition(obj, ok) -> None:
    assert database_ready(obj) is ok


@pytest.mark.parametrize(
    ("conds", "ok"),
    [([{"type": "ACK.ResourceSynced", "status": "True"}], True), ([{"type": "Ready", "status": "True"}], True),
     ([{"type": "ACK.ResourceSynced", "status": "False"}], False), ([], False)],
)
def test_bucket_ready(conds, ok) -> None:
    assert bucket_ready({"status": {"conditions": conds}}) is ok


def _plan(n, now=T0, current=None, cluster=None, bucket=None, **kw):
    return plan(n, hosts=["pr-1.preview.example.com"], refused=[], current=current, cluster=cluster, bucket=bucket,
                settings=settings(**kw), now=now)


def test_plain_preview_is_ready_and_announced_once() -> None:
    p = _plan(ns())
    assert p.status["phase"] == "Ready" and p.status["allowedHosts"] == ["pr-1.preview.example.com"]
    assert [e.reason for e in p.events] == ["Ready"]
    again = _plan(ns(), current=p.status)
    assert again.events == []


def test_terminating_revokes_hosts() -> None:
    p = _plan(ns(deleting=True))
    assert p.status["phase"] == "Terminating" and p.status["allowedHosts"] == []


def test_expired_revokes_and_deletes_or_only_revokes() -> None:
    n = ns(annotations={names.ANN_TTL: "1h"})
    assert _plan(n, now=T0 + timedelta(minutes=59)).status["phase"] == "Ready"
    p = _plan(n, now=T0 + timedelta(hours=1), expiry_action="delete")
    assert p.status["phase"] == "Expired" and p.status["allowedHosts"] == [] and p.delete_namespace
    revoke = _plan(n, now=T0 + timedelta(hours=1))
    assert revoke.status["allowedHosts"] == [] and not revoke.delete_namespace


def test_requeue_at_expiry() -> None:
    p = _plan(ns(annotations={names.ANN_TTL: "1h"}), now=T0 + timedelta(minutes=30))
    assert p.requeue_after == pytest.approx(1800)


def test_database_and_bucket_provisioning_then_ready_then_failed() -> None:
    n = ns(annotations={names.ANN_DATABASE: "true", names.ANN_BUCKET: "true"})
    kw = {"database_destination_path": "s3://backups/main", "database_source_name": "main"}
    p = _plan(n, **kw)
    assert p.status["phase"] == "Provisioning"
    assert {o["kind"] for o in p.objects} == {"Cluster", "Bucket"}
    ready = _plan(n, cluster=_cluster("Cluster in healthy state", "True"),
                  bucket={"status": {"conditions": [{"type": "ACK.ResourceSynced", "status": "True"}]}}, **kw)
    assert ready.status["phase"] == "Ready"
    late = _plan(n, now=T0 + timedelta(hours=1), **kw)
    assert late.status["phase"] == "Failed" and "database and bucket" in late.status["message"]


def test_in_tree_recovery_never_archives_wal() -> None:
    s = settings(database_destination_path="s3://backups/main", database_source_name="main", database_s3_secret="aws")
    (cluster,) = resources.database_objects("pr-1", s)
    spec = cluster["spec"]
    assert "backup" not in spec and "plugins" not in spec
    assert spec["bootstrap"] == {"recovery": {"source": "origin"}}
    store = spec["externalClusters"][0]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://backups/main" and store["serverName"] == "main"


def test_plugin_recovery_uses_object_store_and_no_wal_archiver() -> None:
    s = settings(database_mode="plugin", database_destination_path="s3://backups/main", database_source_name="main")
    store, cluster = resources.database_objects("pr-1", s)
    assert store["kind"] == "ObjectStore" and store["spec"]["configuration"]["destinationPath"] == "s3://backups/main"
    ext = cluster["spec"]["externalClusters"][0]["plugin"]
    assert ext["name"] == "barman-cloud.cloudnative-pg.io" and ext["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert "plugins" not in cluster["spec"] and "backup" not in cluster["spec"]


@pytest.mark.parametrize("namespace", ["pr-1", "PR_1", "a" * 63, "x", "pr-" + "9" * 60, "--weird--ns--"])
def test_bucket_names_are_dns_valid_deterministic_and_short(namespace) -> None:
    import re

    s = settings(bucket_suffix="123456789012")
    name = resources.bucket_name(namespace, "uid-1", s)
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name)
    assert name == resources.bucket_name(namespace, "uid-1", s)
    assert name != resources.bucket_name(namespace, "uid-2", s)
    assert name.endswith("-123456789012")


def test_bucket_has_explicit_deletion_policy() -> None:
    b = resources.bucket("pr-1", "u", settings(bucket_deletion_policy="retain"))
    assert b["metadata"]["annotations"]["services.k8s.aws/deletion-policy"] == "retain"


def test_controller_settings_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
                                  "PREVIEW_BROKER_DEFAULT_TTL": "three days"})
    assert err.value.setting == "PREVIEW_BROKER_DEFAULT_TTL"
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
                                  "PREVIEW_BROKER_DATABASE_DEFAULT": "true"})
    assert err.value.setting == "PREVIEW_BROKER_DATABASE_DESTINATION_PATH"


def test_namespace_view_keeps_only_preview_broker_keys() -> None:
    """Other tools' labels and annotations (Argo CD, kubectl) are not cached: policy never reads them."""
    view = NamespaceView.from_object({"metadata": {
        "name": "pr-1", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"preview-broker.io/pr": "1", "argocd.argoproj.io/instance": "previews"},
        "annotations": {"preview-broker.io/host": "pr-1.preview.example.com",
                        "kubectl.kubernetes.io/last-applied-configuration": "{...}" * 1000},
    }})
    assert view.labels == {"preview-broker.io/pr": "1"}
    assert view.annotations == {"preview-broker.io/host": "pr-1.preview.example.com"}
    assert view.pull_request == "1"


def test_slim_drops_only_the_bookkeeping_and_leaves_the_input_alone() -> None:
    from controller.kube import LAST_APPLIED, slim

    obj = {"apiVersion": "v1", "kind": "X", "spec": {"a": 1}, "status": {"phase": "Ready"},
           "metadata": {"name": "pr-1", "resourceVersion": "7", "managedFields": [{"manager": "kubectl"}],
                        "annotations": {LAST_APPLIED: "{}", "preview-broker.io/host": "h"}}}
    slimmed = slim(obj)
    assert slimmed == {"apiVersion": "v1", "kind": "X", "spec": {"a": 1}, "status": {"phase": "Ready"},
                       "metadata": {"name": "pr-1", "resourceVersion": "7",
                                    "annotations": {"preview-broker.io/host": "h"}}}
    assert "managedFields" in obj["metadata"] and LAST_APPLIED in obj["metadata"]["annotations"]
    # keys are shared between cached objects (one string each, however many objects)
    a, b = (slim(json.loads('{"status": {"allowedHosts": []}}')) for _ in range(2))
    assert next(iter(a["status"])) is next(iter(b["status"]))


def test_preview_gauges_are_counted_at_scrape() -> None:
    from prometheus_client import generate_latest

    from controller.metrics import ControllerMetrics

    previews = {"a": {"status": {"phase": "Ready", "allowedHosts": ["a.x", "b.x"]}},
                "b": {"status": {"phase": "Expired", "allowedHosts": []}},
                "c": {"metadata": {"name": "c"}}}
    metrics = ControllerMetrics()
    metrics.count_previews(lambda: previews.values())
    text = generate_latest(metrics.registry).decode()
    assert 'preview_broker_previews{phase="Ready"} 1.0' in text
    assert 'preview_broker_previews{phase="Expired"} 1.0' in text
    assert 'preview_broker_previews{phase="Unknown"} 1.0' in text
    assert 'preview_broker_previews{phase="Provisioning"} 0.0' in text
    assert "preview_broker_allowlist_hosts 2.0" in text
    previews["d"] = {"status": {"phase": "Ready", "allowedHosts": ["d.x"]}}  # no timer: the next scrape sees it
    assert "preview_broker_allowlist_hosts 3.0" in generate_latest(metrics.registry).decode()
