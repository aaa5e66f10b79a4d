"""The third security round (issue 25), end to end: the real Dex, Traefik and Chromium, two brokers.

Item 1: the broker's own host is no login target, whatever a link asks for.
Item 2: people whose names look alike reach the app as different identity headers, and a name
        with an invisible character is refused with a page that names it.
Item 3: a person in 500 groups of 64 characters signs in.
Item 8: a rolling key change, one replica a stage ahead of the other, fails no login.

Items 3 and 8 restart the two broker replicas in place with other settings (as a rollout would)
and put the stack's own settings back afterwards.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator
from urllib.parse import quote, unquote

import pytest

from tests.support.dex import ADA_EMAIL, LOOKALIKES, MANY_GROUPS, MANY_GROUPS_EMAIL
from tests.support.e2eflows import DEEP, dex_login, gate_login
from foundation.contract import PATH
from tests.support.procs import Proc, wait_until
from tests.support.stack import BROKER_HOST, DOMAIN, Stack

pytestmark = pytest.mark.e2e


def _restart_all(stack: Stack, env: dict[str, str | None] | None = None) -> None:
    for name in stack.broker_names():
        stack.restart_broker(name, env)


@pytest.fixture
def restore(stack: Stack) -> Iterator[None]:
    """Whatever a test did to the replicas' settings, the next test meets the stack's own."""
    yield
    _restart_all(stack)


def _try_login(browser, stack: Stack, namespace: str = "pr-1", email: str = ADA_EMAIL) -> str:  # type: ignore[no-untyped-def]
    """One person's fresh browser signs in on a deep link: returns the user the app saw, or why it failed."""
    context = browser.new_context()
    page = context.new_page()
    try:
        target = stack.url(namespace, DEEP)
        page.goto(target)
        dex_login(page, stack, email)
        try:
            page.wait_for_url(target, timeout=15_000)
        except Exception:
            return f"FAILED at {page.url}: {page.text_content('body')[:300]}"
        page.reload()  # and once more: the session cookie passes forward auth on whichever replica
        page.wait_for_url(target)
        return page.text_content("#user") or ""
    finally:
        context.close()


# Item 1 -------------------------------------------------------------------------------------------------

_claimants = itertools.count(770)  # a namespace a test, each claiming the broker's host


@pytest.fixture
def misconfigured_controller(stack: Stack) -> Iterator[None]:
    """The stack's controller swapped for one that does not know the brokers' host (run outside the
    chart with another PUBLIC_URL), and a namespace that claims that host: the allowlist then says
    auth.preview.test is a live preview.  Everything is put back afterwards."""
    own = stack.procs["controller"]
    own.stop()  # it releases its lease: the swapped one leads at once
    wrong = dict(own.env, PREVIEW_BROKER_PUBLIC_URL=f"https://sso.{DOMAIN}")
    stack.procs["controller"] = Proc("controller", own.argv, own.log_path, env=wrong).start()
    number = next(_claimants)
    ns = f"pr-{number}"
    with stack.api() as c:
        c.post("/api/v1/namespaces", json={"metadata": {
            "name": ns, "labels": {"preview-broker.io/preview": "true", "preview-broker.io/pr": str(number)},
            "annotations": {"preview-broker.io/host": BROKER_HOST}}}).raise_for_status()

        def published() -> bool:
            pe = c.get(f"{PATH}/{ns}")
            return pe.status_code == 200 and BROKER_HOST in ((pe.json().get("status") or {}).get("allowedHosts") or [])

        wait_until(published, "the misconfigured controller publishing the broker's host", 30,
                   stack.procs["controller"])
    time.sleep(0.5)  # the brokers' watches follow within milliseconds
    try:
        yield
    finally:
        stack.procs["controller"].stop()
        stack.procs["controller"] = Proc("controller", own.argv, own.log_path, env=own.env).start()
        stack.delete_preview(ns)


@pytest.mark.parametrize("path", ["/", "/oauth2/userinfo"])
def test_the_brokers_own_host_is_no_login_target_even_when_the_allowlist_says_it_is_live(
        page, stack: Stack, misconfigured_controller, path: str) -> None:
    page.goto(f"{stack.broker_url}/oauth2/start?rd={quote(stack.broker_url + path, safe='')}")
    assert page.url.startswith(f"{stack.broker_url}/oauth2/start")  # never sent on to the IdP
    body = page.text_content("body") or ""
    assert "redirect_broker_host" in body, body


def test_a_login_from_a_preview_still_works_beside_the_refused_host(browser, stack: Stack,
                                                                    misconfigured_controller) -> None:
    assert _try_login(browser, stack, email=ADA_EMAIL) == "ada"


# Item 2 -------------------------------------------------------------------------------------------------

def test_the_real_ada_reaches_the_app_as_ada(browser, stack: Stack) -> None:
    assert _try_login(browser, stack, email=ADA_EMAIL) == "ada"


def test_ada_with_a_zero_width_space_is_refused_with_a_page_naming_the_character(page, stack: Stack) -> None:
    page.goto(stack.url("pr-1", DEEP))
    dex_login(page, stack, "ada.zwsp@example.com")
    page.wait_for_url(f"{stack.broker_url}/oauth2/callback**")
    body = page.text_content("body") or ""
    assert "U+200B ZERO WIDTH SPACE" in body and "identity_hidden_character" in body, body
    # Nothing reached the preview app in that person's name.
    assert page.context.cookies(stack.url("pr-1")) == [] or all(
        c["name"] != "_preview_session" for c in page.context.cookies(stack.url("pr-1")))


@pytest.mark.parametrize("email", ["ada.wide@example.com", "jose.nfc@example.com", "jose.nfd@example.com"])
def test_lookalike_names_reach_the_app_as_headers_that_decode_to_exactly_their_name(
        browser, stack: Stack, email: str) -> None:
    seen = _try_login(browser, stack, email=email)
    assert seen.isascii() and seen != "ada", seen
    assert unquote(seen, errors="strict") == LOOKALIKES[email]


def test_combining_and_precomposed_names_stay_two_people(browser, stack: Stack) -> None:
    nfc = _try_login(browser, stack, email="jose.nfc@example.com")
    nfd = _try_login(browser, stack, email="jose.nfd@example.com")
    assert nfc == "jos%C3%A9" and nfd == "jose%CC%81"


# Item 3 -------------------------------------------------------------------------------------------------

def test_a_person_in_500_groups_of_64_characters_signs_in(browser, stack: Stack, restore) -> None:
    wanted = MANY_GROUPS[437]  # the rule names one group far down the IdP's list
    _restart_all(stack, {"PREVIEW_BROKER_ALLOWED_GROUPS": wanted})
    # The ticket travelled as a URL through Traefik, the session as a cookie: both small enough.
    assert _try_login(browser, stack, email=MANY_GROUPS_EMAIL) == "many"


def test_a_person_in_500_groups_sees_the_groups_the_app_is_configured_to_read(browser, stack: Stack, restore) -> None:
    wanted = MANY_GROUPS[437]
    _restart_all(stack, {"PREVIEW_BROKER_ALLOWED_GROUPS": wanted, "PREVIEW_BROKER_HEADER_GROUPS": "g00*"})
    context = browser.new_context()
    page = context.new_page()
    try:
        target = stack.url("pr-666", "/")  # the recording app: it shows what headers reach an app
        page.goto(target)
        dex_login(page, stack, MANY_GROUPS_EMAIL)
        page.wait_for_url(target)
    finally:
        context.close()
    last = stack.recorded("pr-666")[-1]["headers"]
    assert last["x-auth-request-user"] == "many"
    assert last["x-auth-request-groups"].split(",") == [*MANY_GROUPS[:10], wanted]


def test_passing_every_one_of_500_groups_is_refused_with_a_page_naming_the_setting(page, stack: Stack,
                                                                                    restore) -> None:
    _restart_all(stack, {"PREVIEW_BROKER_HEADER_GROUPS": "*"})
    page.goto(stack.url("pr-1", DEEP))
    dex_login(page, stack, MANY_GROUPS_EMAIL)
    page.wait_for_url(f"{stack.broker_url}/oauth2/callback**")
    body = page.text_content("body") or ""
    assert "too_many_groups" in body and "PREVIEW_BROKER_HEADER_GROUPS" in body, body


# Item 8 -------------------------------------------------------------------------------------------------

def _stages(old: str, new: str) -> dict[str, dict[str, str | None]]:
    """The documented rotation (docs/operations.md), one settings change a stage."""
    return {
        "before": {"PREVIEW_BROKER_SECRET_KEYS": old, "PREVIEW_BROKER_VERIFY_KEYS": None},
        "verify-only": {"PREVIEW_BROKER_SECRET_KEYS": old, "PREVIEW_BROKER_VERIFY_KEYS": new},
        "signing": {"PREVIEW_BROKER_SECRET_KEYS": f"{old},{new}", "PREVIEW_BROKER_VERIFY_KEYS": None},
        "done": {"PREVIEW_BROKER_SECRET_KEYS": new, "PREVIEW_BROKER_VERIFY_KEYS": None},
    }


def _set_stages(stack: Stack, first: dict[str, str | None], second: dict[str, str | None]) -> None:
    one, two = stack.broker_names()
    stack.restart_broker(one, first)
    stack.restart_broker(two, second)


LOGINS_PER_STAGE = 4


def test_a_rolling_key_change_fails_no_login(browser, stack: Stack, restore) -> None:
    stages = _stages(stack.secret_keys, secrets.token_urlsafe(32))
    results: dict[str, list[str]] = {}
    # A person who signed in before the rollout stays signed in through every stage but the last
    # (after SESSION_TTL, the old key goes: sessions made with it end then, as documented).
    early = browser.new_context()
    page = early.new_page()
    gate_login(page, stack, "pr-1")
    for pods in (("before", "before"), ("before", "verify-only"), ("verify-only", "verify-only"),
                 ("verify-only", "signing"), ("signing", "signing"), ("signing", "done")):
        _set_stages(stack, stages[pods[0]], stages[pods[1]])
        results[" + ".join(pods)] = [_try_login(browser, stack) for _ in range(LOGINS_PER_STAGE)]
        if "done" not in pods:
            for _ in range(4):  # forward auth alternates between the replicas
                page.reload()
                assert page.text_content("#user") == "admin", pods
    early.close()
    failed = {stage: r for stage, r in results.items() if r != ["ada"] * LOGINS_PER_STAGE}
    assert failed == {}


def test_without_the_verify_only_stage_logins_fail_between_the_replicas(browser, stack: Stack, restore) -> None:
    """The negative control: a new pod signing with a key the old pod does not know yet."""
    stages = _stages(stack.secret_keys, secrets.token_urlsafe(32))
    _set_stages(stack, stages["before"], stages["signing"])
    results = [_try_login(browser, stack) for _ in range(LOGINS_PER_STAGE)]
    assert any(r.startswith("FAILED") for r in results), results
