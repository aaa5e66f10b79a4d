"""Gateway API on the real control plane (with the real Gateway API and Traefik CRDs): HTTPRoute
hostnames are claimed like Ingress hosts, and the controller generates and owns each preview's auth
wiring (a Traefik Middleware, or nginx-style /oauth2/ routing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from foundation import contract
from tests.support.controller_rig import DOMAIN, eventually, make_rig, merge_patch
from tests.support.controlplane import (
    ControlPlane,
    cleanup,
    install_crds,
    start_control_plane,
)

pytestmark = [pytest.mark.cluster]
BROKER = "http://pb-broker.preview-broker.svc.cluster.local:80"
ROUTES = "/apis/gateway.networking.k8s.io/v1"


def _route(name: str, *hosts: str) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [{"name": "previews", "namespace": "gateways"}], "hostnames": list(hosts),
                     "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}}


async def test_httproute_hostnames_are_claimed_refused_and_released_like_ingress_hosts(
        control_plane: ControlPlane) -> None:
    async with make_rig(control_plane) as rig:
        older = await rig.namespace()
        host = f"gw-{uuid.uuid4().hex[:6]}.{DOMAIN}"
        r = await rig.api.post(f"{ROUTES}/namespaces/{older}/httproutes", json=_route("app", host, "*." + DOMAIN,
                                                                                         "foreign.example.org"))
        assert r.status_code == 201, r.text
        await eventually(lambda: host in rig.allowlist, "HTTPRoute hostname allowed")
        pe = await rig.preview(older)
        assert {h["host"] for h in pe["status"]["refusedHosts"]} == {"*." + DOMAIN, "foreign.example.org"}
        newer = await rig.newer_namespace(older)
        assert (await rig.api.post(f"{ROUTES}/namespaces/{newer}/httproutes", json=_route("app", host))).status_code \
            == 201

        async def newer_refused() -> bool:
            pe = await rig.preview(newer)
            return any("already claimed" in h["reason"] for h in ((pe or {}).get("status") or {}).get("refusedHosts", []))

        await eventually(newer_refused, "the newer namespace's claim refused")
        assert (await rig.api.delete(f"{ROUTES}/namespaces/{older}/httproutes/app")).status_code == 200
        await eventually(lambda: (rig.controller.claims.owner(host) == newer), "the host passes to the newer claim")


async def test_traefik_wiring_is_a_forward_auth_middleware_owned_by_the_preview(control_plane: ControlPlane) -> None:
    async with make_rig(control_plane, auth_wiring="traefik", broker_internal_url=BROKER) as rig:
        ns = await rig.namespace(host=f"mw-{uuid.uuid4().hex[:6]}.{DOMAIN}")
        path = f"/apis/traefik.io/v1alpha1/namespaces/{ns}/middlewares/{contract.WIRING_MIDDLEWARE}"

        async def middleware() -> dict | None:
            r = await rig.api.get(path)
            return r.json() if r.status_code == 200 else None

        mw = await eventually(middleware, "the Middleware")
        assert mw["spec"]["forwardAuth"] == {
            "address": f"{BROKER}/oauth2/auth?redirect=true",
            "authRequestHeaders": ["Cookie", "Accept", "Origin", "Sec-Fetch-Site"],
            "authResponseHeaders": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]}
        pe = await rig.preview(ns)
        (owner,) = mw["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (contract.KIND, ns, pe["metadata"]["uid"])
        # Edited by hand: put back by the next reconcile.
        await merge_patch(rig.api, path, {"spec": {"forwardAuth": {"address": "http://evil.example/"}}})
        rig.controller._wired.clear()  # as after a restart: the controller's memory of what it sent is gone
        rig.controller.queue.add(ns)
        await eventually(lambda: _address_restored(rig, path), "the Middleware restored")


async def _address_restored(rig, path: str) -> bool:  # type: ignore[no-untyped-def]
    return (await rig.api.get(path)).json()["spec"]["forwardAuth"]["address"].startswith(BROKER)


async def test_nginx_wiring_routes_the_preview_s_own_hosts_and_follows_them(control_plane: ControlPlane) -> None:
    async with make_rig(control_plane, auth_wiring_modes="nginx", broker_internal_url=BROKER) as rig:  # a namespace asks
        first = f"ng-{uuid.uuid4().hex[:6]}.{DOMAIN}"
        ns = await rig.namespace(host=first, annotations={contract.ANN_AUTH_WIRING: "nginx"})
        ingress_path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{contract.WIRING_INGRESS}"

        async def routed_hosts() -> list[str]:
            r = await rig.api.get(ingress_path)
            return [rule["host"] for rule in r.json()["spec"]["rules"]] if r.status_code == 200 else []

        assert await eventually(routed_hosts, "the /oauth2 Ingress") == [first]
        service = (await rig.api.get(f"/api/v1/namespaces/{ns}/services/{contract.WIRING_SERVICE}")).json()
        assert service["spec"]["type"] == "ExternalName"
        assert service["spec"]["externalName"] == "pb-broker.preview-broker.svc.cluster.local"
        ingress = (await rig.api.get(ingress_path)).json()
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]
        assert backend["path"] == "/oauth2" and backend["backend"]["service"]["name"] == contract.WIRING_SERVICE
        second = f"ng2-{uuid.uuid4().hex[:6]}.{DOMAIN}"
        route = {"metadata": {"name": "more"}, "spec": {"rules": [{"host": second}]}}
        assert (await rig.api.post(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", json=route)).status_code \
            == 201
        await eventually(lambda: _hosts_are(routed_hosts, {first, second}), "the new host routed too")


async def _hosts_are(routed_hosts, want: set[str]) -> bool:  # type: ignore[no-untyped-def]
    return set(await routed_hosts()) == want


async def test_generated_wiring_is_garbage_collected_with_its_preview(control_plane: ControlPlane) -> None:
    async with make_rig(control_plane, auth_wiring="nginx", broker_internal_url=BROKER) as rig:
        ns = await rig.namespace(host=f"gc-{uuid.uuid4().hex[:6]}.{DOMAIN}")
        svc = f"/api/v1/namespaces/{ns}/services/{contract.WIRING_SERVICE}"

        async def exists() -> bool:
            return (await rig.api.get(svc)).status_code == 200

        await eventually(exists, "the Service")
        # The PreviewEnvironment goes (the namespace stays, e.g. its label was removed): so does the wiring.
        await merge_patch(rig.api, f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {contract.LABEL_PREVIEW: None}}})

        async def gone() -> bool:
            return not await exists()

        # The garbage collector finds new kinds of owners on its discovery resync (every 30 s).
        await eventually(gone, "the Service collected with its PreviewEnvironment", 90)


@pytest.mark.parametrize("name", ["traefik-httproute", "gep-1494-httproute", "traefik-middleware"])
async def test_the_documented_recipes_are_valid_against_the_real_crds(control_plane: ControlPlane, name: str) -> None:
    """docs/gateways.md: the apiserver accepts each recipe (server-side dry run, the real CRD schemas)."""
    from tests.support.recipes import recipe

    async with make_rig(control_plane) as rig:
        ns = await rig.namespace()
        body = recipe(name)
        body["metadata"]["namespace"] = ns
        group = body["apiVersion"]
        plural = {"HTTPRoute": "httproutes", "Middleware": "middlewares"}[body["kind"]]
        r = await rig.api.post(f"/apis/{group}/namespaces/{ns}/{plural}?dryRun=All&fieldValidation=Strict", json=body)
        assert r.status_code == 201, r.text


async def test_a_wiring_the_controller_may_not_make_is_refused_with_a_warning(control_plane: ControlPlane) -> None:
    async with make_rig(control_plane, auth_wiring_modes="traefik", broker_internal_url=BROKER) as rig:
        ns = await rig.namespace(host=f"no-{uuid.uuid4().hex[:6]}.{DOMAIN}",
                                 annotations={contract.ANN_AUTH_WIRING: "nginx"})

        async def warned() -> bool:
            return any(e["reason"] == "AuthWiringRefused" for e in await rig.events(ns))

        await eventually(warned, "an AuthWiringRefused Warning")
        assert (await rig.api.get(f"/api/v1/namespaces/{ns}/services/{contract.WIRING_SERVICE}")).status_code == 404


@pytest.fixture(scope="module")
def standard_channel_plane(tmp_path_factory) -> Iterator[ControlPlane]:
    """A control plane of its own with the Gateway API *standard* channel: what most clusters install
    (the shared one has the experimental channel, a superset)."""
    cp = start_control_plane(tmp_path_factory.mktemp("standard-channel"))
    try:
        names = install_crds(cp, gateway_api_channel="standard")
        assert "httproutes.gateway.networking.k8s.io" in names
        yield cp
    finally:
        cleanup(cp)


async def test_httproute_hosts_are_claimed_on_the_standard_channel_too(standard_channel_plane: ControlPlane) -> None:
    async with make_rig(standard_channel_plane) as rig:
        crd = (await rig.api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                 "httproutes.gateway.networking.k8s.io")).json()
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"
        ns = await rig.namespace()
        host = f"std-{uuid.uuid4().hex[:6]}.{DOMAIN}"
        r = await rig.api.post(f"{ROUTES}/namespaces/{ns}/httproutes", json=_route("app", host))
        assert r.status_code == 201, r.text
        await eventually(lambda: host in rig.allowlist, "HTTPRoute hostname allowed")
        assert (await rig.api.delete(f"{ROUTES}/namespaces/{ns}/httproutes/app")).status_code == 200
        await eventually(lambda: host not in rig.allowlist, "the host released with its HTTPRoute")


@pytest.mark.parametrize(("name", "accepted"), [("traefik-httproute", True), ("gep-1494-httproute", False)])
async def test_on_the_standard_channel_only_the_gep_1494_recipe_is_refused(
        standard_channel_plane: ControlPlane, name: str, accepted: bool) -> None:
    """docs/gateways.md says the ExternalAuth filter needs the experimental channel: the real standard
    CRDs agree (strict field validation names the unknown field)."""
    from tests.support.recipes import recipe

    async with make_rig(standard_channel_plane) as rig:
        ns = await rig.namespace()
        body = recipe(name)
        body["metadata"]["namespace"] = ns
        r = await rig.api.post(f"{ROUTES}/namespaces/{ns}/httproutes?dryRun=All&fieldValidation=Strict", json=body)
        if accepted:
            assert r.status_code == 201, r.text
        else:
            assert r.status_code in (400, 422) and "externalAuth" in r.text, r.text
