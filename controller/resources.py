"""The auth wiring a preview environment gets: pure builders, no I/O (the add-ons' objects: controller/addons/)."""

from __future__ import annotations

from typing import Any

from controller import kinds
from controller.settings import ControllerSettings
from foundation import contract


def _labels() -> dict[str, str]:
    return {contract.LABEL_MANAGED: contract.MANAGER}


# The ForwardAuth request headers the broker reads besides the X-Forwarded-* ones Traefik writes itself
# (docs/security.md): every other client header stays away from the broker.
AUTH_REQUEST_HEADERS = ["Cookie", "Accept", "Origin", "Sec-Fetch-Site"]
IDENTITY_HEADERS = ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]


def auth_wiring(namespace: str, mode: str, hosts: list[str], settings: ControllerSettings) -> list[dict[str, Any]]:
    """The objects that connect a preview's routes to the broker (mode traefik or nginx; none for off).

    traefik: a ForwardAuth Middleware an Ingress names in traefik.ingress.kubernetes.io/router.middlewares
    (<namespace>-preview-broker-auth@kubernetescrd) and an HTTPRoute in an ExtensionRef filter.
    nginx: an ExternalName Service to the broker, and an Ingress sending /oauth2/ of the preview's hosts
    there (ticket, sign-out, login start), for nginx.ingress.kubernetes.io/auth-url annotations.
    """
    from urllib.parse import urlsplit

    base = settings.broker_internal_url
    meta = {"namespace": namespace, "labels": _labels()}
    if mode == "traefik":
        return [{
            "apiVersion": kinds.MIDDLEWARE.api_version,
            "kind": kinds.MIDDLEWARE.kind,
            "metadata": {"name": contract.WIRING_MIDDLEWARE, **meta},
            "spec": {"forwardAuth": {
                "address": f"{base}/oauth2/auth?redirect=true",
                "authRequestHeaders": AUTH_REQUEST_HEADERS,
                "authResponseHeaders": IDENTITY_HEADERS,
            }},
        }]
    if mode != "nginx":
        return []
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    objects: list[dict[str, Any]] = [{
        "apiVersion": kinds.SERVICE.api_version,
        "kind": kinds.SERVICE.kind,
        "metadata": {"name": contract.WIRING_SERVICE, **meta},
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
                        "metadata": {"name": contract.WIRING_INGRESS, **meta}, "spec": spec})
    return objects

