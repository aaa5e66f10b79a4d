"""Who an ID token names: the user name only from the claim the provider asserts as one, and only
tokens issued to this client (finding 7 of the review)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from broker.providers.oidc import identity_from_claims
from tests.support.brokerunit import PR1
from tests.support.fakeidp import CLIENT_ID, FakeIdP
from tests.support.flows import callback, forward_auth, session_cookie, start_gate

DEEP = f"https://{PR1}/x"


@pytest.mark.parametrize(
    ("claims", "username_claim", "user"),
    [
        ({"sub": "s1", "preferred_username": "ada", "email": "ada@example.com", "email_verified": True},
         "preferred_username", "ada"),
        # a display name someone typed is never a user name
        ({"sub": "s1", "name": "ada", "email": "mallory@example.com", "email_verified": True},
         "preferred_username", "mallory@example.com"),
        ({"sub": "s1", "name": "ada"}, "preferred_username", "s1"),
        # an unverified email is not a user name either
        ({"sub": "s1", "email": "ada@example.com", "email_verified": False}, "preferred_username", "s1"),
        ({"sub": "s1", "preferred_username": "", "email": "a@b.c", "email_verified": True}, "preferred_username",
         "a@b.c"),
        ({"sub": "s1", "preferred_username": ["ada"], "email": "a@b.c", "email_verified": True},
         "preferred_username", "a@b.c"),
        ({"sub": "s1", "preferred_username": "ada", "email": "a@b.c", "email_verified": True}, "", "a@b.c"),
        ({"sub": "s1", "upn": "ada@corp", "preferred_username": "x"}, "upn", "ada@corp"),
        ({"sub": 42}, "preferred_username", "42"),
    ],
)
def test_the_user_name_comes_only_from_the_asserted_claim_then_verified_email_then_sub(
        claims, username_claim, user) -> None:
    assert identity_from_claims(claims, "groups", username_claim).user == user


@pytest.mark.parametrize("groups", [None, "eng", ["eng", 3, {"x": 1}], {"eng": True}])
def test_groups_of_any_shape_never_crash(groups) -> None:
    identity = identity_from_claims({"sub": "s", "groups": groups}, "groups", "preferred_username")
    assert all(isinstance(g, str) for g in identity.groups)


def _login(client: TestClient, idp: FakeIdP, **token_claims):  # type: ignore[no-untyped-def]
    params = start_gate(client, idp, DEEP)
    idp.id_token_overrides = token_claims
    return callback(client, code="c", state=params["state"])


def test_a_display_name_does_not_make_someone_else_s_user_name(client: TestClient, idp: FakeIdP) -> None:
    idp.claims = {"sub": "u-9", "name": "ada", "email": "mallory@example.com", "email_verified": True}
    resp = _login(client, idp)
    assert resp.status_code == 302
    cookie, _ = session_cookie(forward_auth(client, resp.headers["location"]))
    assert forward_auth(client, DEEP, cookie).headers["x-auth-request-user"] == "mallory@example.com"


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"aud": [CLIENT_ID, "another-client"]}, 400),  # several audiences and no azp
        ({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}, 400),
        ({"azp": "another-client"}, 400),
        ({"aud": [CLIENT_ID, "another-client"], "azp": CLIENT_ID}, 302),
        ({"aud": [CLIENT_ID]}, 302),
        ({"azp": CLIENT_ID}, 302),
    ],
)
def test_an_id_token_must_be_issued_to_this_client(client: TestClient, idp: FakeIdP, claims, status) -> None:
    resp = _login(client, idp, **claims)
    assert resp.status_code == status, resp.text
    if status == 400:
        assert "id_token_azp" in resp.text
