"""docs/gateways.md shows exactly what the tests run: its Traefik recipes equal the objects the
controller generates and the e2e stack applies."""

from __future__ import annotations

from controller import wiring
from controller.settings import ControllerSettings
from tests.support.recipes import recipe
from tests.support.stack import Preview, gateway_route

BROKER = "http://preview-broker-broker.preview-broker.svc.cluster.local:80"


def test_the_middleware_recipe_is_the_generated_middleware() -> None:
    settings = ControllerSettings.model_validate({"preview_domains": ["preview.example.com"], "auth_wiring": "traefik",
                                                  "public_url": "https://auth.preview.example.com",
                                                  "broker_internal_url": BROKER})
    (generated,) = wiring.auth_wiring("NS", "traefik", [], settings)
    generated["metadata"].pop("labels")
    assert recipe("traefik-middleware") == generated


def test_the_httproute_recipe_is_the_one_the_e2e_stack_applies() -> None:
    route = gateway_route(Preview("NS", "pr-123.preview.example.com", "gate-gateway", 8080))
    documented = recipe("traefik-httproute")
    assert documented["metadata"] == {"name": "app", "namespace": "NS"}
    assert documented["spec"] == route["spec"]
