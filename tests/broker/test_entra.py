"""Microsoft Entra ID: its addresses count as verified only by an explicit preset for one tenant,
and a user in too many groups is told so (issue 25, item 7).

Entra's ID tokens never carry `email_verified`, so with an email-domain rule every Entra user was
refused (`email_not_verified`).  `OIDC_EMAIL_VERIFIED=entra` reads what Microsoft documents instead
(`xms_edov`, from one tenant's issuer only); nothing changes for any other issuer.  A user in more
groups than fit in a token gets Entra's "groups overage" instead of a groups claim: that is refused
as `groups_overage`, with a page that says what to change, never as "not in group".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from starlette.testclient import TestClient

from broker.providers import entra
from broker.providers.oidc import groups_overage
from foundation.config import ConfigError, load
from tests.support.brokerunit import PR1, make_settings
from tests.support.fakeentra import ENTRA_ISSUER, GROUP_ENG, LOGIN, OTHER_TENANT, TENANT, FakeEntra, overage
from tests.support.flows import callback, forward_auth, session_cookie, start_gate

DEEP = f"https://{PR1}/x"
RULE = {"allowed_email_domains": ["contoso.example"]}


@pytest.fixture
def idp() -> Iterator[FakeEntra]:  # replaces the generic IdP: these brokers talk to Entra only
    with respx.mock(assert_all_called=False) as router:
        yield FakeEntra(router).install()


@pytest.fixture
def broker(make_client):  # type: ignore[no-untyped-def]
    """conftest's make_client, on Entra's issuer with an email-domain rule (its idp is the one above)."""
    return lambda **overrides: make_client(oidc_issuer=ENTRA_ISSUER, **{**RULE, **overrides})


def _login(client: TestClient, idp: FakeEntra, **claims: Any):  # type: ignore[no-untyped-def]
    params = start_gate(client, idp, DEEP)
    idp.id_token_overrides = claims
    return callback(client, code="c", state=params["state"])


def _headers(client: TestClient, resp) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 302, resp.text
    cookie, _ = session_cookie(forward_auth(client, resp.headers["location"]))
    answer = forward_auth(client, DEEP, cookie)
    assert answer.status_code == 202, answer.text  # allowed, with the identity headers
    return dict(answer.headers)


@pytest.mark.parametrize("claims", [{}, {"xms_edov": True}])
def test_by_default_an_entra_user_is_still_refused_by_an_email_rule(broker, idp, claims) -> None:
    """The default trusts only `email_verified: true`, which Entra never sends: no silent trust."""
    resp = _login(broker(), idp, **claims)
    assert resp.status_code == 403
    assert "not_authorized_email_not_verified" in resp.text


def test_the_entra_preset_admits_a_tenant_user_whose_email_domain_owner_is_verified(broker, idp) -> None:
    headers = _headers(client := broker(oidc_email_verified="entra"), _login(client, idp, xms_edov=True))
    assert headers["x-auth-request-email"] == "ada@contoso.example"
    assert headers["x-auth-request-user"] == "ada@contoso.example"  # preferred_username


@pytest.mark.parametrize(
    "claims",
    [
        {},  # xms_edov not configured: Microsoft says `email` alone must not authorize
        {"xms_edov": False},
        {"xms_edov": "true"},  # a string is not the documented boolean
        {"xms_edov": 1},
        {"xms_edov": True, "tid": OTHER_TENANT},  # another directory's user
        {"xms_edov": True, "tid": None},
        {"xms_edov": True, "email_verified": True, "tid": OTHER_TENANT},  # the preset reads Entra's signal only
    ],
)
def test_the_entra_preset_refuses_an_email_entra_did_not_vouch_for(broker, idp, claims) -> None:
    resp = _login(broker(oidc_email_verified="entra"), idp, **claims)
    assert resp.status_code == 403
    assert "not_authorized_email_not_verified" in resp.text


def test_the_entra_preset_vouches_only_for_the_id_token_s_own_email(broker, idp) -> None:
    """xms_edov speaks of the ID token's email; an address Graph's userinfo adds is not vouched for."""
    client = broker(oidc_email_verified="entra", allowed_groups=[GROUP_ENG])
    resp = _login(client, idp, xms_edov=True, email=None, groups=None)  # userinfo is asked for the groups
    assert idp.userinfo_requests
    assert resp.status_code == 403
    assert "not_authorized_email_not_verified" in resp.text


def test_the_entra_preset_still_applies_the_domain_rule(broker, idp) -> None:
    resp = _login(broker(oidc_email_verified="entra"), idp, xms_edov=True, email="mallory@fabrikam.example")
    assert resp.status_code == 403
    assert "not_authorized_email_domain_not_allowed" in resp.text


BASE_ENV = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", "PREVIEW_BROKER_SECRET_KEYS": "k" * 32,
    "PREVIEW_BROKER_PROVIDER": "oidc", "PREVIEW_BROKER_CLIENT_ID": "c", "PREVIEW_BROKER_CLIENT_SECRET": "s",
    "PREVIEW_BROKER_ALLOWED_HOSTS": PR1, "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "contoso.example",
    "PREVIEW_BROKER_OIDC_EMAIL_VERIFIED": "entra",
}


@pytest.mark.parametrize(
    "change",
    [
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/common/v2.0"},
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/organizations/v2.0"},
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/consumers/v2.0"},
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"},  # consumers' id
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/{{tenantid}}/v2.0"},  # the multi-tenant metadata's template
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/contoso.onmicrosoft.com/v2.0"},  # not the issuer tokens carry
        {"PREVIEW_BROKER_OIDC_ISSUER": f"https://sts.windows.net/{TENANT}/"},  # v1.0 tokens
        {"PREVIEW_BROKER_OIDC_ISSUER": f"{LOGIN}/{TENANT}/v2.0/../../common/v2.0"},
        {"PREVIEW_BROKER_OIDC_ISSUER": f"https://login.microsoftonline.com.evil.test/{TENANT}/v2.0"},
        {"PREVIEW_BROKER_OIDC_ISSUER": "https://idp.example.org"},
        {"PREVIEW_BROKER_PROVIDER": "github", "PREVIEW_BROKER_OIDC_ISSUER": ENTRA_ISSUER},
    ],
)
def test_the_entra_preset_without_one_tenant_s_issuer_stops_start_up(change) -> None:
    with pytest.raises(ConfigError) as err:
        load(type(make_settings()), {**BASE_ENV, **change})
    assert err.value.setting == "PREVIEW_BROKER_OIDC_EMAIL_VERIFIED"
    assert "one tenant" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("issuer", [ENTRA_ISSUER, ENTRA_ISSUER + "/", f"https://login.microsoftonline.us/{TENANT}/v2.0"])
def test_a_tenant_issuer_names_its_tenant(issuer: str) -> None:
    assert load(type(make_settings()), {**BASE_ENV, "PREVIEW_BROKER_OIDC_ISSUER": issuer}).oidc_email_verified == "entra"
    assert entra.tenant_of(issuer.rstrip("/")) == TENANT


def test_the_setting_is_off_unless_chosen_and_its_help_names_the_risk() -> None:
    field = type(make_settings()).model_fields["oidc_email_verified"]
    assert make_settings().oidc_email_verified == "claim"
    assert "WEAKENS" in (field.description or "") and "common/organizations/consumers" in (field.description or "")


# --- the groups overage -------------------------------------------------------------------------

@pytest.mark.parametrize("claims", [overage(), {"groups": None, "hasgroups": True}])
def test_a_user_in_too_many_groups_is_told_so_not_that_they_are_not_in_the_group(broker, idp, claims) -> None:
    client = broker(allowed_email_domains=[], allowed_groups=[GROUP_ENG])
    resp = _login(client, idp, **claims)
    assert resp.status_code == 403
    assert "not_authorized_groups_overage" in resp.text
    assert "not_in_allowed_groups" not in resp.text
    assert "more groups than your identity provider fits into a login token" in resp.text
    assert "Groups assigned to the application" in resp.text
    assert idp.userinfo_requests  # Graph's userinfo was asked too: it never lists groups


def test_an_entra_user_whose_groups_fit_is_admitted_by_a_group_rule(broker, idp) -> None:
    headers = _headers(client := broker(allowed_email_domains=[], allowed_groups=[GROUP_ENG]), _login(client, idp))
    assert headers["x-auth-request-groups"] == GROUP_ENG


def test_an_entra_user_in_none_of_the_groups_is_still_not_in_group(broker, idp) -> None:
    resp = _login(broker(allowed_email_domains=[], allowed_groups=[GROUP_ENG]), idp, groups=["another-group"])
    assert resp.status_code == 403
    assert "not_authorized_not_in_allowed_groups" in resp.text


def test_the_overage_does_not_matter_when_no_rule_reads_groups(broker, idp) -> None:
    client = broker(oidc_email_verified="entra")
    headers = _headers(client, _login(client, idp, xms_edov=True, **overage()))
    assert headers["x-auth-request-email"] == "ada@contoso.example"


@pytest.mark.parametrize(
    ("claims", "says_overage"),
    [
        (overage(), True),
        ({"hasgroups": True}, True),
        ({"_claim_names": {"groups": "src1"}, "groups": ["g"]}, False),  # the groups came after all
        ({"_claim_names": {"roles": "src1"}}, False),  # another claim was left out, not the groups
        ({"_claim_names": "groups"}, False),  # malformed: not an overage signal
        ({"hasgroups": "true"}, False),
        ({}, False),
    ],
)
def test_only_the_idp_s_own_signal_is_an_overage(claims, says_overage) -> None:
    assert groups_overage(claims, "groups") is says_overage


def test_a_session_remembers_the_overage_for_a_broker_whose_rule_reads_groups(broker, idp) -> None:
    """A session made before the operator added a group rule is refused for the true reason after it."""
    before = broker(oidc_email_verified="entra")
    resp = _login(before, idp, xms_edov=True, **overage())
    assert resp.status_code == 302, resp.text
    cookie, _ = session_cookie(forward_auth(before, resp.headers["location"]))
    after = broker(oidc_email_verified="entra", allowed_groups=[GROUP_ENG])  # same keys, a group rule added
    answer = forward_auth(after, DEEP, cookie)
    assert answer.status_code == 403
    assert "not_authorized_groups_overage" in answer.text and "more groups than" in answer.text
