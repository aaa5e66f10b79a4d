"""Two different identities never reach a preview app as the same identity headers (issue 25, item 2).

Apps key on X-Auth-Request-User / -Email / -Groups.  A name that differs from another only by a
character nobody sees (a zero-width space, a bidi control, a no-break space) is refused at login
with a page that says why; any other name that is not plain ASCII (full-width letters, combining
marks) is passed on exactly, percent-encoded, so `unquote` of the header gives the IdP's value
and no two identities share a header.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

import pytest

from broker.identity import Identity
from broker.identity_text import header_value, hidden_character
from tests.support.flows import callback, forward_auth, gate_login, start_gate

DEEP = "https://pr-1.preview.example.com/x"

# (what it is, the character) — each is invisible, or renders as something else, in a name.
HIDDEN = [
    ("ZWSP", "\u200b"),
    ("ZWJ", "\u200d"),
    ("ZWNJ", "\u200c"),
    ("RLO", "\u202e"),
    ("LRI", "\u2066"),
    ("NBSP", "\u00a0"),
    ("ideographic space", "\u3000"),
    ("soft hyphen", "\u00ad"),
    ("word joiner", "\u2060"),
    ("BOM", "\ufeff"),
    ("Hangul filler", "\u3164"),
    ("combining grapheme joiner", "\u034f"),
    ("variation selector", "\ufe0f"),
    ("line separator", "\u2028"),
    ("NEL", "\u0085"),
    ("ESC", "\x1b"),
    ("tag character", "\U000e0041"),
    ("private use", "\ue000"),
]
FIELDS = ["user", "email", "group"]


def _claims(field: str, text: str) -> dict[str, object]:
    claims: dict[str, object] = {"sub": "u-evil", "email": "ada@example.com", "email_verified": True,
                                 "preferred_username": "ada", "groups": ["eng"]}
    if field == "user":
        claims["preferred_username"] = "ad" + text + "a"
    elif field == "email":
        claims["email"] = "ada" + text + "@example.com"
    else:
        claims["groups"] = ["eng" + text]
    return claims


@pytest.mark.parametrize("name,char", HIDDEN, ids=[n for n, _ in HIDDEN])
@pytest.mark.parametrize("field", FIELDS)
def test_a_name_with_a_hidden_character_is_refused_at_login_with_a_page_that_says_why(
        make_client, idp, field: str, name: str, char: str) -> None:
    # HEADER_GROUPS=*: every group reaches the app, so every group must be checked too.
    client = make_client(header_groups=["*"])
    idp.claims = _claims(field, char)
    resp = callback(client, code="c", state=start_gate(client, idp, DEEP)["state"])
    assert resp.status_code == 403, resp.text
    assert "identity_hidden_character" in resp.text
    assert f"U+{ord(char):04X}" in resp.text  # names the character, so the admin can find it
    assert char not in resp.text


def _headers(client, idp, claims) -> dict[str, str]:  # type: ignore[no-untyped-def]
    idp.claims = claims
    ticket = gate_login(client, idp, DEEP)
    resp = forward_auth(client, ticket)
    assert resp.status_code == 302, resp.text
    cookie = resp.headers["set-cookie"].split(";")[0]
    checked = forward_auth(client, DEEP, cookie)
    assert checked.status_code == 202, checked.text
    return {k: v for k, v in checked.headers.items() if k.startswith("x-auth-request-")}


# Pairs of different people whose names look alike or normalise alike.
LOOKALIKES = [
    ("full-width letters", "ada", "\uff41\uff44\uff41"),
    ("combining vs precomposed", "jos\u00e9", "jose\u0301"),
    ("Kelvin sign", "kay", "\u212aay"),
    ("a percent escape", "ada", "%61da"),
    ("trailing space", "ada", "ada "),
    ("leading space", "ada", " ada"),
    ("comma", "ada", "ad,a"),
    ("Latin vs Cyrillic a", "ada", "\u0430da"),
]


@pytest.mark.parametrize("what,real,lookalike", LOOKALIKES, ids=[w for w, _, _ in LOOKALIKES])
def test_lookalike_names_reach_the_app_as_different_headers_that_decode_to_the_exact_name(
        client, idp, what: str, real: str, lookalike: str) -> None:
    base = {"sub": "u-1", "email_verified": True, "groups": ["eng"]}
    first = _headers(client, idp, {**base, "preferred_username": real, "email": f"{real.strip()}@example.com"})
    client.cookies.clear()
    client.preview_jar = {}  # another person, another browser
    second = _headers(client, idp, {**base, "sub": "u-2", "preferred_username": lookalike,
                                    "email": "other@example.com"})
    assert first["x-auth-request-user"] != second["x-auth-request-user"]
    assert unquote(first["x-auth-request-user"]) == real
    assert unquote(second["x-auth-request-user"]) == lookalike
    assert second["x-auth-request-user"].isascii()


def test_a_group_that_differs_only_by_a_zero_width_space_never_reads_as_the_real_group(client, idp) -> None:
    """The default rule is email domains only: a group an app keys on must not be forgeable."""
    headers = _headers(client, idp, {"sub": "u-2", "email": "eve@example.com", "email_verified": True,
                                     "preferred_username": "eve", "groups": ["admins\u200b"]})
    assert "admins" not in headers.get("x-auth-request-groups", "").split(",")


# The encoding on its own: injective, ASCII, and the identity for what is plain already.
CORPUS = ["ada", "Ada Lovelace", "ada@example.com", "eng/platform", "a%b", "a,b", " a", "a ", "\u00e9", "e\u0301",
          "\uff41", "\u212a", "\u0430", "100%", "%25", "a\tb", "\x7f", "\U0001f600", "\ud800", ""]


@pytest.mark.parametrize("text", CORPUS, ids=[repr(t) for t in CORPUS])
def test_header_values_are_printable_ascii_and_unquote_to_the_exact_text(text: str) -> None:
    value = header_value(text)
    assert all(0x20 <= ord(c) < 0x7F for c in value)
    assert value == value.strip()  # HTTP strips surrounding white space: it must carry none
    assert "," not in value  # the groups header is a comma list
    assert unquote(value, errors="surrogatepass") == text


def test_header_values_of_different_texts_differ() -> None:
    values = [header_value(t) for t in CORPUS]
    assert len(set(values)) == len(CORPUS)


def test_plain_names_pass_unchanged() -> None:
    for text in ("ada", "Ada Lovelace", "ada.lovelace+preview@example.com", "eng/platform", "o'brien"):
        assert header_value(text) == text


def test_hidden_character_names_the_code_point() -> None:
    assert hidden_character("ad\u200ba") == "U+200B ZERO WIDTH SPACE"
    assert hidden_character("jose\u0301") is None
    assert hidden_character("\uff41\uff44\uff41") is None
    assert hidden_character("Ada Lovelace") is None
    assert hidden_character("ada\ue000") == "U+E000 (private use)"
    assert unicodedata.category("\u0301") == "Mn"


def test_identity_headers_of_a_session_made_before_the_check_are_still_unambiguous() -> None:
    """Sessions minted by an older broker may carry a hidden character: encoded, never stripped."""
    from broker.forward_auth import identity_headers

    real = identity_headers(Identity("ada", "ada@example.com", True, ("eng",)))
    old = identity_headers(Identity("ad\u200ba", "ada@example.com", True, ("eng\u200b",)))
    assert real["X-Auth-Request-User"] != old["X-Auth-Request-User"]
    assert real["X-Auth-Request-Groups"] != old["X-Auth-Request-Groups"]
