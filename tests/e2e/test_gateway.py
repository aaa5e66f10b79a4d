"""The Gateway API end to end: pr-5 is reached through Traefik's Gateway provider, an HTTPRoute whose
ExtensionRef filter names the ForwardAuth Middleware the controller generated in pr-5's namespace."""

from __future__ import annotations

import pytest

from foundation import contract
from tests.support.dex import DEX_USER_EMAIL
from tests.support.e2eflows import DEEP, cookie, gate_login
from tests.support.stack import DOMAIN, Stack

pytestmark = pytest.mark.e2e


def test_the_middleware_is_generated_and_owned_by_the_preview(stack: Stack) -> None:
    with stack.api() as c:
        mw = c.get(f"/apis/traefik.io/v1alpha1/namespaces/pr-5/middlewares/{contract.WIRING_MIDDLEWARE}").json()
        pe = c.get(f"{contract.PATH}/pr-5").json()
    assert mw["spec"]["forwardAuth"]["address"] == f"http://127.0.0.1:{stack.lb_port}/oauth2/auth?redirect=true"
    assert mw["metadata"]["ownerReferences"][0]["uid"] == pe["metadata"]["uid"]
    assert pe["status"]["allowedHosts"] == [f"pr-5.{DOMAIN}"]  # its host came from the HTTPRoute alone


def test_gateway_api_deep_link_round_trip(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-5")
    assert page.text_content("#user") == "admin"
    assert page.text_content("#email") == DEX_USER_EMAIL
    assert page.text_content("#path") == DEEP
    session = cookie(page, stack.url("pr-5"), "__Host-pb_session")
    assert session is not None and session["domain"] == f"pr-5.{DOMAIN}" and session["secure"]


def test_a_cookie_from_the_gateway_preview_opens_no_ingress_preview_and_back(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-5", "/")
    gateway_session = cookie(page, stack.url("pr-5"), "__Host-pb_session")
    assert gateway_session is not None
    page.context.add_cookies([{"name": "__Host-pb_session", "value": gateway_session["value"],
                               "url": stack.url("pr-1", "/"), "secure": True}])
    page.goto(stack.url("pr-1", "/secret"))
    page.wait_for_url(f"{stack.dex.issuer}/**")  # pr-5's cookie is no pass to pr-1
    page.context.clear_cookies()
    gate_login(page, stack, "pr-1", "/")
    ingress_session = cookie(page, stack.url("pr-1"), "__Host-pb_session")
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "__Host-pb_session", "value": ingress_session["value"],  # type: ignore[index]
                               "url": stack.url("pr-5", "/"), "secure": True}])
    page.goto(stack.url("pr-5", "/secret"))
    page.wait_for_url(f"{stack.dex.issuer}/**")  # nor pr-1's to pr-5
