"""One registry of the kinds the controller reads and writes (controller/kinds.py), one of its add-ons
(controller/addons/) and one of the auth wiring kinds (controller/wiring.py): every object the
controller builds is a registered kind, at the path the apiserver serves it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller import kinds, wiring
from controller.addons import ADDONS, BY_KIND, PROVISIONED
from controller.settings import ControllerSettings
from controller.views import NamespaceView
from foundation import contract
from foundation.config import load

SETTINGS = load(ControllerSettings, {
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_DATABASE_DESTINATION_PATH": "s3://backups/main",
    "PREVIEW_BROKER_BROKER_INTERNAL_URL": "http://broker.preview-broker.svc:80",
})
NS = NamespaceView("pr-1", "uid-1", datetime(2026, 11, 28, tzinfo=UTC))

# Written out here once more, as the apiserver serves them: the registry must agree.
PATHS = {
    "Cluster": "/apis/postgresql.cnpg.io/v1/namespaces/pr-1/clusters",
    "ObjectStore": "/apis/barmancloud.cnpg.io/v1/namespaces/pr-1/objectstores",
    "Bucket": "/apis/s3.services.k8s.aws/v1alpha1/namespaces/pr-1/buckets",
    "Middleware": "/apis/traefik.io/v1alpha1/namespaces/pr-1/middlewares",
    "Service": "/api/v1/namespaces/pr-1/services",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/pr-1/ingresses",
}


def _built() -> list[dict]:
    objects = [o for addon in PROVISIONED for o in addon.desired(NS, SETTINGS)[0]]
    return objects + [o for mode in wiring.MODES for o in wiring.auth_wiring("pr-1", mode, ["h.example"], SETTINGS)]


def test_every_object_built_is_a_registered_kind_at_the_path_the_apiserver_serves() -> None:
    built = _built()
    assert sorted(o["kind"] for o in built) == sorted(PATHS)
    for obj in built:
        kind = kinds.BY_KIND[obj["kind"]]
        assert obj["apiVersion"] == kind.api_version
        assert kinds.collection_path(obj) == PATHS[obj["kind"]]


def test_the_cluster_scoped_and_core_paths() -> None:
    assert kinds.PREVIEW.path() == contract.PATH
    assert kinds.PREVIEW.path("ignored") == contract.PATH  # cluster-scoped: no namespace in the path
    assert kinds.NAMESPACE.path() == "/api/v1/namespaces"
    assert kinds.EVENT.path("pr-1") == "/api/v1/namespaces/pr-1/events"
    assert kinds.INGRESS.path() == "/apis/networking.k8s.io/v1/ingresses"
    assert kinds.APPLICATION.path("argocd") == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"


def test_optional_kinds_are_those_of_crds_and_looked_up_in_that_order() -> None:
    assert [k.kind for k in kinds.OPTIONAL] == ["Cluster", "ObjectStore", "Bucket", "Application", "HTTPRoute",
                                                "Middleware"]


@pytest.mark.parametrize("addon", PROVISIONED, ids=lambda a: a.name)
def test_each_provisioned_add_on_owns_the_kinds_it_creates_and_watches_one_of_them(addon) -> None:
    assert {o["kind"] for o in addon.desired(NS, SETTINGS)[0]} == {k.kind for k in addon.creates}
    assert addon.observed in addon.creates
    assert all(BY_KIND[k.kind] is addon for k in addon.creates)


def test_add_on_names_are_unique_and_the_status_keys_keep_their_order() -> None:
    names = [a.name for a in ADDONS]
    assert len(set(names)) == len(names)
    assert [a.name for a in PROVISIONED] == ["database", "bucket"]


def test_each_wiring_kind_builds_exactly_its_kinds() -> None:
    for mode, entry in wiring.WIRINGS.items():
        built = wiring.auth_wiring("pr-1", mode, ["h.example"], SETTINGS)
        assert [o["kind"] for o in built] == [k.kind for k in entry.kinds]
    assert wiring.auth_wiring("pr-1", "off", ["h.example"], SETTINGS) == []
