"""Email domains compare as IDNA A-labels, groups as exact names (issue 25, item 4).

'ß'.casefold() is 'ss' and the KELVIN SIGN casefolds to 'k', so comparing casefolded text let
mallory@glaßworks.example pass a rule for glassworks.example, and a group "Straße" one for
"strasse".  Domains now compare as DNS does (UTS-46 non-transitional, lower case, no trailing
dot); an address whose domain is not valid IDNA is refused; group names compare exactly, GitHub's
org and team names case-insensitively in ASCII only (GitHub's own rule).
"""

from __future__ import annotations

import pytest

from broker.identity import Identity, Policy, authorize, email_domain
from foundation.config import ConfigError
from tests.support.brokerunit import make_settings
from tests.support.flows import callback, start_gate

DEEP = "https://pr-1.preview.example.com/x"


def _verdict(email: str, rule: str) -> str:
    return authorize(Identity("u", email, True), Policy.build([rule])).reason


# (email, ALLOWED_EMAIL_DOMAINS entry, reason)
EMAILS = [
    # ß is a letter of its own under non-transitional UTS-46: glaßworks is xn--glaworks-sya, not glassworks
    ("mallory@glaßworks.example", "glassworks.example", "email_domain_not_allowed"),
    ("mallory@GLAẞWORKS.example", "glassworks.example", "email_domain_not_allowed"),  # capital sharp s
    ("ada@glaßworks.example", "glaßworks.example", "ok"),
    # the dotless ı is not i, and the dotted capital İ is not I
    ("mallory@ıbm.example", "ibm.example", "email_domain_not_allowed"),
    ("mallory@İbm.example", "ibm.example", "email_domain_not_allowed"),
    # full-width letters and upper case map to the same DNS name, so to the same mail servers
    ("ada@ｅｘａｍｐｌｅ.com", "example.com", "ok"),
    ("ada@Example.COM", "example.com", "ok"),
    ("ada@example.com", "EXAMPLE.com", "ok"),
    ("ada@\u212aelvin.example", "kelvin.example", "ok"),  # UTS-46 maps the KELVIN SIGN to k, as DNS does
    # punycode given directly, on either side, is the same A-label
    ("ada@xn--glaworks-sya.example", "glaßworks.example", "ok"),
    ("ada@XN--GLAWORKS-SYA.example", "glaßworks.example", "ok"),
    ("ada@glaßworks.example", "xn--glaworks-sya.example", "ok"),
    ("mallory@xn--glaworks-sya.example", "glassworks.example", "email_domain_not_allowed"),
    # a trailing dot is no mailbox's (RFC 5321): refused, not read as example.com
    ("ada@example.com.", "example.com", "email_domain_invalid"),
    ("ada@example.com..", "example.com", "email_domain_invalid"),
    # not valid IDNA, or not a domain at all
    ("ada@xn--zz.example.com", "example.com", "email_domain_invalid"),
    ("ada@ex_ample.com", "ex-ample.com", "email_domain_invalid"),
    ("ada@exa mple.com", "example.com", "email_domain_invalid"),
    ("ada@[192.0.2.1]", "example.com", "email_domain_invalid"),
    ("ada@com", "example.com", "email_domain_invalid"),
    ("@example.com", "example.com", "email_domain_invalid"),
    ("ada@", "example.com", "email_domain_invalid"),
    ("ada", "example.com", "email_domain_invalid"),
    ("ada@\u0635a.example", "example.com", "email_domain_invalid"),  # Arabic and Latin in one label: bidi rule
    ("ada@\u0301a.example", "example.com", "email_domain_invalid"),  # a label may not start with a combining mark
    # suffixes and other domains stay other domains
    ("mallory@evil-example.com", "example.com", "email_domain_not_allowed"),
    ("mallory@example.com.evil.test", "example.com", "email_domain_not_allowed"),
    ("ada@sub.example.com", "example.com", "email_domain_not_allowed"),
]


@pytest.mark.parametrize(("email", "rule", "reason"), EMAILS)
def test_email_domains_compare_as_idna_a_labels(email: str, rule: str, reason: str) -> None:
    assert _verdict(email, rule) == reason


@pytest.mark.parametrize("email", ["ada@xn--zz.example.com", "ada@example.com.", "ada@[192.0.2.1]"])
def test_the_wildcard_rule_still_refuses_an_email_that_is_not_valid_idna(email: str) -> None:
    assert _verdict(email, "*") == "email_domain_invalid"


def test_the_domain_is_the_a_label_of_everything_after_the_last_at_sign() -> None:
    assert email_domain('"a@b"@Glaßworks.Example') == "xn--glaworks-sya.example"


@pytest.mark.parametrize(
    ("entry", "a_label"),
    [("Glaßworks.Example.", "xn--glaworks-sya.example"), ("ｅｘａｍｐｌｅ.com", "example.com"),
     ("XN--GLAWORKS-SYA.example", "xn--glaworks-sya.example"), ("*", "*")],
)
def test_allowed_email_domains_are_a_labels_from_start_up(entry: str, a_label: str) -> None:
    assert make_settings(allowed_email_domains=[entry]).allowed_email_domains == [a_label]


@pytest.mark.parametrize("entry", ["*.example.com", "@example.com", "xn--zz.example", "com", "exa mple.com"])
def test_an_allowed_email_domain_that_is_not_a_domain_stops_start_up(entry: str) -> None:
    from broker.settings import BrokerSettings
    from foundation.config import load

    env = {"PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
           "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com", "PREVIEW_BROKER_SECRET_KEYS": "k" * 32,
           "PREVIEW_BROKER_PROVIDER": "oidc", "PREVIEW_BROKER_OIDC_ISSUER": "https://idp.example.org",
           "PREVIEW_BROKER_CLIENT_ID": "c", "PREVIEW_BROKER_CLIENT_SECRET": "s",
           "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com",
           "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": f"example.com,{entry}"}
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, env)
    assert err.value.setting == "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS"
    assert "not a domain name" in str(err.value) and "\n" not in str(err.value)


# (the user's group, ALLOWED_GROUPS entry, admitted)
GROUPS = [
    ("Straße", "strasse", False),  # casefold: 'ss'
    ("strasse", "Straße", False),
    ("\u212aube", "kube", False),  # KELVIN SIGN; casefold and lower() both give 'k'
    ("kube", "\u212aube", False),
    ("ﬁnance", "finance", False),  # the fi ligature casefolds to "fi"
    ("ıt", "it", False),  # dotless i
    ("ＥＮＧ", "eng", False),  # full-width letters
    ("ENG", "eng", False),  # group names and ids are exact identifiers: the IdP compares them so
    ("eng", "eng", True),
    ("Straße", "Straße", True),
    ("8c5e2d3a-0d7b-4f6e-9a51-2b3c4d5e6f70", "8c5e2d3a-0d7b-4f6e-9a51-2b3c4d5e6f70", True),
]


@pytest.mark.parametrize(("group", "rule", "admitted"), GROUPS)
def test_groups_compare_exactly(group: str, rule: str, admitted: bool) -> None:
    policy = Policy.build([], [rule])
    assert authorize(Identity("u", groups=(group,)), policy).allowed is admitted
    assert policy.names_group(group) is admitted  # the same comparison decides which groups a login carries


# (GitHub org login or org/team slug, GITHUB_ORGS/GITHUB_TEAMS entry, admitted)
GITHUB = [
    ("Acme", "acme", True),  # GitHub logins are case-insensitive
    ("acme/Platform", "ACME/platform", True),
    ("\u212acme", "kcme", False),  # GitHub names are ASCII; a KELVIN SIGN is not a k
    ("ａｃｍｅ", "acme", False),
    ("acme-x", "acme", False),
]


@pytest.mark.parametrize(("group", "rule", "admitted"), GITHUB)
def test_github_names_compare_case_insensitively_in_ascii_only(group: str, rule: str, admitted: bool) -> None:
    assert authorize(Identity("u", groups=(group,)), Policy.build([], [], [rule])).allowed is admitted


def test_a_github_rule_that_is_not_ascii_stops_start_up() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        make_settings(allowed_email_domains=[], github_orgs=["\u212acme"])


def test_a_glassworks_rule_refuses_mallory_at_glasswerks_with_sharp_s_and_says_why(make_client, idp) -> None:
    client = make_client(allowed_email_domains=["glassworks.example"])
    idp.claims = {**idp.claims, "email": "mallory@glaßworks.example", "preferred_username": "mallory"}
    params = start_gate(client, idp, DEEP)
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == 403
    assert "email address&#x27;s domain is not one the administrator allows" in resp.text


def test_an_email_domain_that_is_not_idna_is_refused_with_a_page_that_says_so(make_client, idp) -> None:
    client = make_client(allowed_email_domains=["*"])
    idp.claims = {**idp.claims, "email": "ada@xn--zz.example.com"}
    params = start_gate(client, idp, DEEP)
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == 403
    assert "not a valid domain name" in resp.text
