"""Redirect-target policy: a table per rule, plus the attack corpus at both login endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from broker.allowlist import MutableAllowlist
from broker.redirect import Origin, check_redirect
from tests.support.brokerunit import PR1
from tests.support.fakeidp import CLIENT_ID, FakeIdP

ALLOW = frozenset({PR1, "xn--bcher-kva.preview.example.com"})
ORIGIN = Origin("https", PR1)
CORPUS = [
    json.loads(line)
    for line in (Path(__file__).parent / "testdata" / "openredirects.txt").read_text().splitlines()
    if line and not line.startswith("#")
]


def verdict(target: str, **kw):
    return check_redirect(target, ALLOW, **kw)


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (f"https://{PR1}", f"https://{PR1}/"),
        (f"https://{PR1}/a/b?c=d#e", f"https://{PR1}/a/b?c=d#e"),
        ("HTTPS://PR-1.Preview.Example.COM/x", f"https://{PR1}/x"),
        (f"https://{PR1}./x", f"https://{PR1}/x"),
        (f"https://{PR1}:443/x", f"https://{PR1}/x"),
        (f"https://{PR1}?q=1", f"https://{PR1}/?q=1"),
        ("https://bücher.preview.example.com/", "https://xn--bcher-kva.preview.example.com/"),
        ("https://BÜCHER.preview.example.com/", "https://xn--bcher-kva.preview.example.com/"),
        (f"https://{PR1}/%2F%2Fevil.com", f"https://{PR1}/%2F%2Fevil.com"),
        (f"https://{PR1}/path@evil.com", f"https://{PR1}/path@evil.com"),
    ],
)
def test_exact_host_accepted_and_normalized(target, url) -> None:
    v = verdict(target)
    assert v.ok, v.reason
    assert v.url == url


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.com",
        f"https://{PR1}.evil.com",
        f"https://x{PR1}",
        "https://preview.example.com",
        "https://pr-2.preview.example.com",
        f"https://a.{PR1}",
    ],
)
def test_never_suffix_or_prefix_matching(target) -> None:
    assert verdict(target).reason == "host_not_allowed"


@pytest.mark.parametrize(
    ("target", "allow_http", "ok"),
    [(f"https://{PR1}/", False, True), (f"http://{PR1}/", False, False), (f"http://{PR1}/", True, True),
     (f"ftp://{PR1}/", True, False), (f"javascript://{PR1}/%0a", True, False)],
)
def test_scheme_https_unless_allow_http(target, allow_http, ok) -> None:
    assert verdict(target, allow_http=allow_http).ok is ok


@pytest.mark.parametrize(
    ("target", "extra", "ok"),
    [
        (f"https://{PR1}:443/", frozenset(), True),
        (f"https://{PR1}:8443/", frozenset(), False),
        (f"https://{PR1}:8443/", frozenset({8443}), True),
        (f"https://{PR1}:80/", frozenset(), False),
        (f"https://{PR1}:0/", frozenset(), False),
        (f"https://{PR1}:99999/", frozenset({99999}), False),
        (f"https://{PR1}:/", frozenset(), False),
    ],
)
def test_default_or_configured_port_only(target, extra, ok) -> None:
    assert verdict(target, extra_ports=extra).ok is ok


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (f"https://user@{PR1}/", "userinfo"),
        (f"https://{PR1}@evil.com/", "userinfo"),
        (f"https://u:p@{PR1}/", "userinfo"),
        (f"https://{PR1}\\@evil.com", "backslash"),
        ("/\\evil.com", "backslash"),
        (f"https://{PR1}/\tx", "whitespace_or_control"),
        (f"https://{PR1}/\x00", "whitespace_or_control"),
        (f"https://{PR1}/\u2028", "whitespace_or_control"),
        (f"https://{PR1}/\u200b", "whitespace_or_control"),
        (f"https://{PR1}%2Fevil.com", "encoded_authority"),
        (f"https://{PR1}%2F@evil.com", "userinfo"),
        (f"https://{PR1}%2eevil.com", "encoded_authority"),
        (f"https://{PR1}%40evil.com", "encoded_authority"),
    ],
)
def test_no_userinfo_backslash_control_or_encoded_separators(target, reason) -> None:
    assert verdict(target, origin=ORIGIN).reason == reason


@pytest.mark.parametrize(
    ("target", "origin", "result"),
    [
        ("/deep/link?x=1", ORIGIN, f"https://{PR1}/deep/link?x=1"),
        ("/", ORIGIN, f"https://{PR1}/"),
        ("/x", Origin("https", PR1, 8443), None),  # origin port must itself be allowed
        ("/x", None, None),
        ("//evil.com/x", ORIGIN, None),
        ("x/y", ORIGIN, None),
        ("?a=b", ORIGIN, None),
    ],
)
def test_relative_targets_resolve_against_their_preview_host(target, origin, result) -> None:
    v = verdict(target, origin=origin)
    assert (v.url if v.ok else None) == result


def test_relative_target_with_origin_port_allowed() -> None:
    v = verdict("/x", origin=Origin("http", PR1, 8080), allow_http=True, extra_ports=frozenset({8080}))
    assert v.url == f"http://{PR1}:8080/x"


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 150


@pytest.mark.parametrize("target", CORPUS)
def test_corpus_refused_by_policy(target) -> None:
    assert not verdict(target).ok
    assert not verdict(target, origin=ORIGIN).ok


@pytest.fixture
def allowlist() -> MutableAllowlist:
    # The corpus is written for exactly one live preview host.
    return MutableAllowlist({PR1})


@pytest.fixture
def corpus_client(client: TestClient, idp: FakeIdP) -> TestClient:
    return client


def test_corpus_refused_at_start_and_relay(corpus_client: TestClient) -> None:
    """Every payload at /oauth2/start (broker host and preview host) and /oauth2/relay: 400, no redirect."""
    failures = []
    for target in CORPUS:
        for url in (
            "/oauth2/start?" + urlencode({"rd": target}),
            f"https://{PR1}/oauth2/start?" + urlencode({"rd": target}),
            "/oauth2/relay?" + urlencode({"return_to": target, "client_id": CLIENT_ID, "response_type": "code"}),
        ):
            resp = corpus_client.get(url)
            if resp.status_code != 400 or "location" in resp.headers:
                failures.append((url, resp.status_code, resp.headers.get("location")))
    assert failures == []


def test_remembered_answers_still_follow_the_live_allowlist() -> None:
    """The parse of a target is cached; whether its host is live never is."""
    live = MutableAllowlist({PR1})
    target = f"https://{PR1}/cached/deep/link"
    assert check_redirect(target, live)
    live.discard(PR1)
    refused = check_redirect(target, live)
    assert not refused and refused.reason == "host_not_allowed"
    live.add(PR1)
    assert check_redirect(target, live).url == target
