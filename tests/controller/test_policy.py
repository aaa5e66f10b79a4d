"""Pure lifecycle policy: hosts, claims, expiry, readiness, phases and events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from controller.addons.bucket import bucket as ack_bucket
from controller.addons.bucket import bucket_name, bucket_ready
from controller.addons.database import database_objects, database_ready
from controller.policy import (
    ClaimIndex,
    NamespaceView,
    RouteView,
    candidate_hosts,
    plan,
    standing,
    validate_hosts,
)
from controller.settings import ControllerSettings
from foundation import contract
from foundation.config import ConfigError, load

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DOMAINS = ("preview.example.com",)
PUBLIC = {"PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com"}


def settings(**kw) -> ControllerSettings:
    """Both add-ons on, as for a cluster that runs CloudNativePG and ACK (tests of them off say so)."""
    return ControllerSettings.model_validate({"preview_domains": ["preview.example.com"],
                                              "public_url": "https://auth.preview.example.com",
                                              "database_enabled": True, "bucket_enabled": True, **kw})


def ns(name="pr-1", created=T0, deleting=False, labels=None, annotations=None) -> NamespaceView:
    return NamespaceView(name, f"uid-{name}", created, deleting, labels or {}, annotations or {})


def test_candidates_from_annotation_and_ingresses() -> None:
    n = ns(annotations={contract.ANN_HOST: "pr-1.preview.example.com"})
    ings = [RouteView("ingress", "web", ("api.pr-1.preview.example.com",), False),
            RouteView("ingress", "x", ("x.preview.example.com",), True)]
    assert [h for h, _ in candidate_hosts(n, ings, "all")] == [
        "pr-1.preview.example.com", "api.pr-1.preview.example.com", "x.preview.example.com"]
    assert [h for h, _ in candidate_hosts(n, ings, "annotated")] == ["pr-1.preview.example.com", "x.preview.example.com"]


def test_httproute_hostnames_are_candidates_under_the_same_rules() -> None:
    route = RouteView.from_httproute({
        "metadata": {"name": "app", "annotations": {contract.ANN_EXPOSE: "true"}},
        "spec": {"hostnames": ["gw.pr-1.preview.example.com", "*.pr-1.preview.example.com", 7]},
    })
    ingress = RouteView.from_ingress({"metadata": {"name": "app"},
                                      "spec": {"rules": [{"host": "in.pr-1.preview.example.com"}, {"http": {}}]}})
    assert route == RouteView("httproute", "app", ("gw.pr-1.preview.example.com", "*.pr-1.preview.example.com"), True)
    found = candidate_hosts(ns(), [route, ingress], "all")
    assert found == [("gw.pr-1.preview.example.com", "httproute/app"), ("*.pr-1.preview.example.com", "httproute/app"),
                     ("in.pr-1.preview.example.com", "ingress/app")]
    valid, refused = validate_hosts(found, ("preview.example.com",))
    assert valid == ["gw.pr-1.preview.example.com", "in.pr-1.preview.example.com"]
    assert [r["host"] for r in refused] == ["*.pr-1.preview.example.com"]  # a wildcard claims nobody's host


@pytest.mark.parametrize(("annotation", "setting", "modes", "mode", "refused"), [
    (None, "off", "", "off", False),
    (None, "traefik", "", "traefik", False),
    ("nginx", "traefik", "nginx", "nginx", False),
    ("nginx", "traefik", "", "off", True),  # not granted: nothing made, a Warning says why
    ("off", "nginx", "", "off", False),
    ("Traefik", "off", "traefik", "traefik", False),
    ("traefik", "off", "", "off", True),
    ("bogus", "nginx", "", "off", True),
])
def test_the_namespace_annotation_chooses_among_the_allowed_auth_wirings(annotation, setting, modes, mode,
                                                                       refused) -> None:
    from controller.policy import auth_wiring

    annotations = {contract.ANN_AUTH_WIRING: annotation} if annotation else {}
    extra = {"broker_internal_url": "http://b.preview-broker.svc.cluster.local:80"} if setting != "off" or modes else {}
    chosen, why = auth_wiring(ns(annotations=annotations), settings(auth_wiring=setting, auth_wiring_modes=modes,
                                                                    **extra))
    assert (chosen, bool(why)) == (mode, refused)


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


BROKER = "auth.preview.example.com"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (BROKER, "the broker's own host (PUBLIC_URL)"),
        ("AUTH.Preview.Example.com.", "the broker's own host (PUBLIC_URL)"),  # normalized before the check
        ("x.auth.preview.example.com", "the broker's own host (PUBLIC_URL)"),  # under it: could set its cookies
        ("status.preview.example.com", "reserved (RESERVED_HOSTS)"),
        ("a.b.internal.preview.example.com", "reserved (RESERVED_HOSTS)"),
        ("xauth.preview.example.com", None),  # a longer label is another host, not a subdomain
        ("auth-1.preview.example.com", None),
        ("pr-1.preview.example.com", None),
    ],
)
def test_the_broker_host_and_reserved_hosts_are_never_a_previews(raw, reason) -> None:
    s = settings(public_url=f"https://{BROKER}/", reserved_hosts="status.preview.example.com,internal.preview.example.com")
    valid, refused = validate_hosts([(raw, "annotation")], DOMAINS, s.reserved)
    if reason is None:
        assert valid and not refused
    else:
        assert valid == [] and refused == [{"host": refused[0]["host"], "reason": f"{reason} (annotation)"}]


def test_without_reserved_hosts_the_brokers_own_host_is_still_reserved() -> None:
    assert settings().reserved == {BROKER: "the broker's own host (PUBLIC_URL)"}
    valid, refused = validate_hosts([(BROKER, "annotation")], DOMAINS, settings().reserved)
    assert valid == [] and refused == [{"host": BROKER, "reason": "the broker's own host (PUBLIC_URL) (annotation)"}]


def test_the_controller_refuses_to_start_without_the_brokers_public_url() -> None:
    """Issue 25, item 1: without it a namespace could claim auth.<preview domain> and the brokers would publish
    it as a login target. One setting, the broker's own: PREVIEW_BROKER_PUBLIC_URL."""
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com"})
    assert str(err.value) == "PREVIEW_BROKER_PUBLIC_URL: is required but not set"


@pytest.mark.parametrize(("field", "value"), [("public_url", "auth.example.com"), ("public_url", "https://"),
                                               ("reserved_hosts", "not a host")])
def test_reserved_settings_errors_name_the_setting(field, value) -> None:
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", **PUBLIC,
                                  f"PREVIEW_BROKER_{field.upper()}": value})
    assert err.value.setting == f"PREVIEW_BROKER_{field.upper()}"


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


def _plan(n, now=T0, current=None, cluster=None, bucket=None, pr=None, app_gone=False, **kw):
    s = settings(**kw)
    st = standing(n, current=current, pr=pr, application_gone=app_gone, settings=s, now=now)
    return plan(n, hosts=["pr-1.preview.example.com"], refused=[], current=current,
                observed={"database": cluster, "bucket": bucket},
                settings=s, now=now, standing=st)


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
    n = ns(annotations={contract.ANN_TTL: "1h"})
    assert _plan(n, now=T0 + timedelta(minutes=59)).status["phase"] == "Ready"
    p = _plan(n, now=T0 + timedelta(hours=1), expiry_action="delete")
    assert p.status["phase"] == "Expired" and p.status["allowedHosts"] == [] and p.delete_namespace
    revoke = _plan(n, now=T0 + timedelta(hours=1))
    assert revoke.status["allowedHosts"] == [] and not revoke.delete_namespace


def test_requeue_at_expiry() -> None:
    p = _plan(ns(annotations={contract.ANN_TTL: "1h"}), now=T0 + timedelta(minutes=30))
    assert p.requeue_after == pytest.approx(1800)


def test_database_and_bucket_provisioning_then_ready_then_failed() -> None:
    n = ns(annotations={contract.ANN_DATABASE: "true", contract.ANN_BUCKET: "true"})
    kw = {"database_destination_path": "s3://backups/main", "database_source_name": "main"}
    p = _plan(n, **kw)
    assert p.status["phase"] == "Provisioning"
    assert [o["kind"] for o in p.objects] == ["ObjectStore", "Cluster", "Bucket"]  # the plugin form by default
    ready = _plan(n, cluster=_cluster("Cluster in healthy state", "True"),
                  bucket={"status": {"conditions": [{"type": "ACK.ResourceSynced", "status": "True"}]}}, **kw)
    assert ready.status["phase"] == "Ready"
    late = _plan(n, now=T0 + timedelta(hours=1), **kw)
    assert late.status["phase"] == "Failed" and "database and bucket" in late.status["message"]


def test_in_tree_recovery_never_archives_wal() -> None:
    s = settings(database_mode="in-tree", database_destination_path="s3://backups/main", database_source_name="main",
                 database_s3_secret="aws")
    (cluster,) = database_objects("pr-1", s)
    spec = cluster["spec"]
    assert "backup" not in spec and "plugins" not in spec
    assert spec["bootstrap"] == {"recovery": {"source": "origin"}}
    store = spec["externalClusters"][0]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://backups/main" and store["serverName"] == "main"


def test_plugin_recovery_uses_object_store_and_no_wal_archiver() -> None:
    s = settings(database_destination_path="s3://backups/main", database_source_name="main")
    assert s.database_mode == "plugin"  # the default since CloudNativePG deprecated barmanObjectStore (1.26)
    store, cluster = database_objects("pr-1", s)
    assert store["kind"] == "ObjectStore" and store["spec"]["configuration"]["destinationPath"] == "s3://backups/main"
    ext = cluster["spec"]["externalClusters"][0]["plugin"]
    assert ext["name"] == "barman-cloud.cloudnative-pg.io" and ext["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert "plugins" not in cluster["spec"] and "backup" not in cluster["spec"]


def test_database_defaults_leave_class_image_resources_and_target_to_cnpg() -> None:
    (_, cluster) = database_objects("pr-1", settings(database_destination_path="s3://b/p"))
    spec = cluster["spec"]
    assert spec["storage"] == {"size": "1Gi"} and spec["bootstrap"] == {"recovery": {"source": "origin"}}
    assert "imageName" not in spec and "resources" not in spec


def test_database_storage_class_image_resources_and_point_in_time_are_settable() -> None:
    s = load(ControllerSettings, {
        "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", **PUBLIC,
        "PREVIEW_BROKER_DATABASE_ENABLED": "true",
        "PREVIEW_BROKER_DATABASE_DESTINATION_PATH": "s3://backups/main",
        "PREVIEW_BROKER_DATABASE_STORAGE_CLASS": "gp3",
        "PREVIEW_BROKER_DATABASE_IMAGE": "ghcr.io/cloudnative-pg/postgresql:17.5",
        "PREVIEW_BROKER_DATABASE_RESOURCES": '{"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}',
        "PREVIEW_BROKER_DATABASE_RECOVERY_TARGET_TIME": "2026-11-27T23:00:00Z",
    })
    p = _plan(ns(annotations={contract.ANN_DATABASE: "true"}), **s.model_dump())
    (cluster,) = [o for o in p.objects if o["kind"] == "Cluster"]
    spec = cluster["spec"]
    assert spec["storage"] == {"size": "1Gi", "storageClass": "gp3"}
    assert spec["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.5"
    assert spec["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    assert spec["bootstrap"]["recovery"] == {"source": "origin", "recoveryTarget": {"targetTime": "2026-11-27T23:00:00Z"}}


@pytest.mark.parametrize(
    ("annotation", "target", "warned"),
    [("2026-11-01T08:30:00+01:00", "2026-11-01T07:30:00Z", False),  # per preview, normalized to UTC
     ("yesterday", "2026-11-27T23:00:00Z", True)],  # unreadable: the setting's, and a Warning once
)
def test_a_preview_may_pick_its_own_point_in_time(annotation, target, warned) -> None:
    n = ns(annotations={contract.ANN_DATABASE: "true", contract.ANN_DATABASE_TARGET_TIME: annotation})
    p = _plan(n, database_destination_path="s3://b/p", database_recovery_target_time="2026-11-27T23:00:00Z")
    (cluster,) = [o for o in p.objects if o["kind"] == "Cluster"]
    assert cluster["spec"]["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": target}
    assert ("InvalidDatabaseTarget" in [e.reason for e in p.events]) is warned


@pytest.mark.parametrize(
    ("env", "setting"),
    [({"PREVIEW_BROKER_DATABASE_RESOURCES": "cpu=1"}, "PREVIEW_BROKER_DATABASE_RESOURCES"),
     ({"PREVIEW_BROKER_DATABASE_RESOURCES": '{"requests": {"gpu": "1"}}'}, "PREVIEW_BROKER_DATABASE_RESOURCES"),
     ({"PREVIEW_BROKER_DATABASE_RECOVERY_TARGET_TIME": "2026-11-27 23:00"}, "PREVIEW_BROKER_DATABASE_RECOVERY_TARGET_TIME"),
     ({"PREVIEW_BROKER_DATABASE_MODE": "barman"}, "PREVIEW_BROKER_DATABASE_MODE")],
)
def test_database_settings_errors_name_the_setting(env, setting) -> None:
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", **PUBLIC, **env})
    assert err.value.setting == setting


@pytest.mark.parametrize("namespace", ["pr-1", "PR_1", "a" * 63, "x", "pr-" + "9" * 60, "--weird--ns--"])
def test_bucket_names_are_dns_valid_deterministic_and_short(namespace) -> None:
    import re

    s = settings(bucket_suffix="123456789012")
    name = bucket_name(namespace, "uid-1", s)
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name)
    assert name == bucket_name(namespace, "uid-1", s)
    assert name != bucket_name(namespace, "uid-2", s)
    assert name.endswith("-123456789012")


def test_bucket_has_explicit_deletion_policy() -> None:
    b = ack_bucket("pr-1", "u", settings(bucket_deletion_policy="retain"))
    assert b["metadata"]["annotations"]["services.k8s.aws/deletion-policy"] == "retain"


def test_controller_settings_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", **PUBLIC,
                                  "PREVIEW_BROKER_DEFAULT_TTL": "three days"})
    assert err.value.setting == "PREVIEW_BROKER_DEFAULT_TTL"
    with pytest.raises(ConfigError) as err:
        load(ControllerSettings, {"PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", **PUBLIC,
                                  "PREVIEW_BROKER_DATABASE_ENABLED": "true", "PREVIEW_BROKER_DATABASE_DEFAULT": "true"})
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
    from kube.client import LAST_APPLIED, slim

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
