"""The auth wiring kinds: what connects a preview's routes to the broker, one table entry per kind.

Pure builders, no I/O.  AUTH_WIRING (and a namespace's preview-broker.io/auth-wiring) names an
entry of `WIRINGS`, or off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controller import kinds
from controller.settings import ControllerSettings
from foundation import contract

# The ForwardAuth request headers the broker reads besides the X-Forwarded-* ones Traefik writes itself
# (docs/security.md): every other client header stays away from the broker.
AUTH_REQUEST_HEADERS = ["Cookie", "Accept", "Origin", "Sec-Fetch-Site"]
IDENTITY_HEADERS = ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]


def _meta(namespace: str, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {contract.LABEL_MANAGED: contract.MANAGER}}


def traefik(namespace: str, hosts: list[str], settings: ControllerSettings) -> list[dict[str, Any]]:
    """A ForwardAuth Middleware an Ingress names in traefik.ingress.kubernetes.io/router.middlewares
    (<namespace>-preview-broker-auth@kubernetescrd) and an HTTPRoute in an ExtensionRef filter."""
    return [{
        "apiVersion": kinds.MIDDLEWARE.api_version,
        "kind": kinds.MIDDLEWARE.kind,
        "metadata": _meta(namespace, contract.WIRING_MIDDLEWARE),
        "spec": {"forwardAuth": {
            "address": f"{settings.broker_internal_url}/oauth2/auth?redirect=true",
            "authRequestHeaders": AUTH_REQUEST_HEADERS,
            "authResponseHeaders": IDENTITY_HEADERS,
        }},
    }]


def nginx(namespace: str, hosts: list[str], settings: ControllerSettings) -> list[dict[str, Any]]:
    """An ExternalName Service to the broker, and an Ingress sending /oauth2/ of the preview's hosts
    there (ticket, sign-out, login start), for nginx.ingress.kubernetes.io/auth-url annotations."""
    parts = urlsplit(settings.broker_internal_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    objects: list[dict[str, Any]] = [{
        "apiVersion": kinds.SERVICE.api_version,
        "kind": kinds.SERVICE.kind,
        "metadata": _meta(namespace, contract.WIRING_SERVICE),
        "spec": {"type": "ExternalName", "externalName": parts.hostname,
                 "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }]
    if hosts:  # an Ingress needs at least one rule; a preview without live hosts has nothing to route
        backend = {"service": {"name": contract.WIRING_SERVICE, "port": {"number": port}}}
        spec: dict[str, Any] = {"rules": [
            {"host": h, "http": {"paths": [{"path": "/oauth2", "pathType": "Prefix", "backend": backend}]}}
            for h in hosts]}
        if settings.auth_wiring_ingress_class:
            spec["ingressClassName"] = settings.auth_wiring_ingress_class
        objects.append({"apiVersion": kinds.INGRESS.api_version, "kind": kinds.INGRESS.kind,
                        "metadata": _meta(namespace, contract.WIRING_INGRESS), "spec": spec})
    return objects


@dataclass(frozen=True, slots=True)
class Wiring:
    mode: str  # the value of AUTH_WIRING and of the annotation
    kinds: tuple[kinds.Kind, ...]  # what build() returns
    build: Callable[[str, list[str], ControllerSettings], list[dict[str, Any]]]


WIRINGS = {w.mode: w for w in (
    Wiring("traefik", (kinds.MIDDLEWARE,), traefik),
    Wiring("nginx", (kinds.SERVICE, kinds.INGRESS), nginx),
)}
MODES = tuple(WIRINGS)


def auth_wiring(namespace: str, mode: str, hosts: list[str], settings: ControllerSettings) -> list[dict[str, Any]]:
    """The objects of wiring `mode` in `namespace` (none for off)."""
    wiring = WIRINGS.get(mode)
    return wiring.build(namespace, hosts, settings) if wiring else []
