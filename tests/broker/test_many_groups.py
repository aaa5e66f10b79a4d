"""A user in hundreds of groups logs in (issue 25, item 3).

Enterprise identity providers send hundreds of groups.  The ticket link to the preview host and
the session cookie carry only the groups the rules name (ALLOWED_GROUPS, GITHUB_ORGS,
GITHUB_TEAMS) and those HEADER_GROUPS passes on to the app, so they stay small whatever the IdP
sends; when what must be carried does not fit a cookie, the login is refused with a page naming
the setting, never with a 400 from the preview host.
"""

from __future__ import annotations

import random
import string
from urllib.parse import urlsplit

import pytest

from broker.query import MAX_PARAM_LENGTH
from broker.sessions import MAX_COOKIE_BYTES
from tests.support.flows import callback, forward_auth, gate_login, start_gate

DEEP = "https://pr-1.preview.example.com/deep/link?x=1"
# 500 groups of 64 characters, as incompressible as real names (itsdangerous compresses payloads).
_rng = random.Random(25)
GROUPS = [f"g{i:03d}-" + "".join(_rng.choices(string.ascii_lowercase + string.digits, k=59)) for i in range(500)]
assert all(len(g) == 64 for g in GROUPS)


def _login(client, idp, groups: list[str]):  # type: ignore[no-untyped-def]
    idp.claims = {"sub": "u-1", "email": "ada@example.com", "email_verified": True, "preferred_username": "ada",
                  "groups": groups}
    ticket = gate_login(client, idp, DEEP)
    assert len(urlsplit(ticket).query) < MAX_PARAM_LENGTH // 2, len(ticket)
    redeemed = forward_auth(client, ticket)
    assert redeemed.status_code == 302, redeemed.text
    cookie = redeemed.headers["set-cookie"].split(";")[0]
    assert len(cookie) < MAX_COOKIE_BYTES
    checked = forward_auth(client, DEEP, cookie)
    assert checked.status_code == 202, checked.text
    return checked


def test_a_user_in_500_groups_logs_in_when_the_rule_names_one_of_them_late_in_the_list(make_client, idp) -> None:
    client = make_client(allowed_email_domains=[], allowed_groups=[GROUPS[350]])
    checked = _login(client, idp, GROUPS)
    assert checked.headers["x-auth-request-groups"] == GROUPS[350]


def test_a_user_in_500_groups_logs_in_under_an_email_domain_rule_and_carries_no_groups(make_client, idp) -> None:
    checked = _login(make_client(), idp, GROUPS)
    assert "x-auth-request-groups" not in checked.headers


def test_header_groups_pass_on_the_named_groups_and_prefixes(make_client, idp) -> None:
    client = make_client(allowed_groups=[GROUPS[10]], header_groups=[GROUPS[20], "g49*"])
    checked = _login(client, idp, GROUPS)
    shown = checked.headers["x-auth-request-groups"].split(",")
    assert shown == [GROUPS[10], GROUPS[20], *GROUPS[490:500]]


def test_more_groups_than_a_cookie_holds_are_refused_at_login_with_a_page_naming_the_setting(make_client, idp) -> None:
    client = make_client(header_groups=["*"])
    idp.claims = {"sub": "u-1", "email": "ada@example.com", "email_verified": True, "preferred_username": "ada",
                  "groups": GROUPS}
    resp = callback(client, code="c", state=start_gate(client, idp, DEEP)["state"])
    assert resp.status_code == 403
    assert "too_many_groups" in resp.text and "HEADER_GROUPS" in resp.text


@pytest.mark.parametrize("count", [1, 50, 199, 200, 201, 1000])
def test_the_named_group_is_found_wherever_it_stands_in_the_list(make_client, idp, count: int) -> None:
    """No silent cut of the IdP's list: a group past any fixed limit still counts."""
    groups = [f"other-{i}" for i in range(count - 1)] + ["preview-users"]
    client = make_client(allowed_email_domains=[], allowed_groups=["preview-users"])
    checked = _login(client, idp, groups)
    assert checked.headers["x-auth-request-groups"] == "preview-users"
