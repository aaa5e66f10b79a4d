"""Forward auth's hand-made helpers give exactly what the general library functions give.

Only the forward-auth path (every request of every preview) keeps hand-made code: the
session-signature check, header picking, the redirect builder, the plain-number metrics and
the one-cookie reader.  Each is checked here against the library behaviour it stands in for,
over crafted cases and a seeded random corpus.  Logins use the libraries as shipped.
"""

from __future__ import annotations

import inspect
import random
import re
import zlib
from http.cookies import SimpleCookie

import pytest
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from broker.cookies import cookie_value, request_cookie
from broker.core import Broker
from broker.forward_auth import ForwardAuth, _wants_html
from broker.forwarded import (
    DIRECT_HEADERS,
    FORWARD_AUTH_HEADERS,
    GATEWAY_HEADERS,
    from_direct,
    from_gateway,
    from_nginx,
    from_traefik,
    pick_headers,
)
from broker.responses import NO_STORE, redirect
from broker.tokens import SESSION_SALT, STATE_SALT, SessionSignature, make_serializers
from foundation.clock import FrozenClock
from tests.support.brokerunit import KEY_NEW, KEY_OLD

TTL = 3600


def _library_verdict(serializer: URLSafeTimedSerializer, token: str) -> bool | str:
    try:
        serializer.loads(token, max_age=TTL)
    except SignatureExpired:
        return "expired"
    except BadSignature:
        return False
    except Exception:  # a payload that is not JSON behind a valid signature: the caller's loads refuses it
        return True
    return True


def _our_verdict(check: SessionSignature, token: str) -> bool | str:
    reason = check.check(token)
    return True if reason is None else "expired" if reason == "expired" else False


def test_session_signature_agrees_with_itsdangerous_loads() -> None:
    """Accepted or refused (and expired told apart) exactly as the library's loads decides."""
    clock = FrozenClock(1_800_000_000)
    ours = make_serializers([KEY_OLD, KEY_NEW], clock)
    old_only = make_serializers([KEY_OLD], clock)
    other = make_serializers(["another-key-" + "x" * 32], clock)
    state = make_serializers([KEY_NEW], clock)
    check = SessionSignature(ours.session, TTL, clock)
    rng = random.Random(7)
    tokens = []
    for i in range(300):
        payload = {"h": f"pr-{i}.preview.example.com", "u": "ada", "g": [f"g{j}" for j in range(rng.randint(0, 60))]}
        token = ours.session.dumps(payload)  # large payloads come out zlib-compressed ('.' first)
        tokens += [token, old_only.session.dumps(payload), other.session.dumps(payload), state.state.dumps(payload)]
        cut = rng.randint(0, len(token))
        flip = rng.randint(0, len(token) - 1)
        tokens += [token[:cut], token[:flip] + rng.choice("A.-_x=é ") + token[flip + 1:], token + "x", "." + token]
    clock.advance(-10)
    tokens += [ours.session.dumps({"h": "future"})]  # signed 10 s "after" the checks below: from the future
    clock.advance(10)
    for age in (TTL - 1, TTL, TTL + 1):
        clock.advance(-age)
        tokens.append(ours.session.dumps({"h": "aged", "a": age}))
        clock.advance(age)
    tokens += ["", ".", "..", "a.b.c", "a.b", "x" * 9000, "é.é.é", "a.AAAA.AAAA", "." + "A" * 40,
               ".eJyrVkrLz1eyUkrKLEpRqgUAKkYFKw.AAAA.AAAA", "a..b", "\x00.\x00.\x00"]
    assert any(t.startswith(".") and _library_verdict(ours.session, t) is True for t in tokens)  # compressed seen
    verdicts = {t: (_our_verdict(check, t), _library_verdict(ours.session, t)) for t in tokens}
    assert [t for t, (a, b) in verdicts.items() if a != b] == []
    assert {a for a, _ in verdicts.values()} == {True, False, "expired"}


def test_session_signature_refuses_a_signer_that_is_not_an_hmac() -> None:
    from itsdangerous.signer import NoneAlgorithm

    clock = FrozenClock()
    serializer = URLSafeTimedSerializer(KEY_NEW, salt=SESSION_SALT, signer_kwargs={"algorithm": NoneAlgorithm()})
    with pytest.raises(TypeError):
        SessionSignature(serializer, TTL, clock)


def test_serializers_are_itsdangerous_as_shipped_on_our_clock() -> None:
    clock = FrozenClock(1_800_000_000)
    ours = make_serializers([KEY_OLD, KEY_NEW], clock)
    vanilla = URLSafeTimedSerializer([KEY_OLD, KEY_NEW], salt=STATE_SALT)
    token = ours.state.dumps({"j": "x"})
    assert vanilla.loads(token) == {"j": "x"}
    assert vanilla.loads(token, return_timestamp=True)[1].timestamp() == 1_800_000_000
    assert type(ours.state) is URLSafeTimedSerializer
    assert zlib  # (compressed tokens are exercised above)


def test_pick_headers_decodes_the_named_ones_and_the_last_repeat_wins() -> None:
    raw = [(b"host", b"a"), (b"cookie", b"x=1"), (b"host", b"b"), (b"x-h", "é".encode("latin-1")), (b"other", b"o")]
    assert pick_headers(raw, frozenset({b"host", b"x-h", b"cookie"})) == {"host": "b", "cookie": "x=1", "x-h": "é"}


@pytest.mark.parametrize(
    ("functions", "names"),
    [
        ((from_traefik, ForwardAuth._decide, ForwardAuth._special, _wants_html), FORWARD_AUTH_HEADERS["traefik"]),
        ((from_nginx, ForwardAuth._decide, ForwardAuth._special, _wants_html), FORWARD_AUTH_HEADERS["nginx"]),
        ((from_gateway, ForwardAuth._decide, ForwardAuth._special, _wants_html), GATEWAY_HEADERS),
        ((from_direct, Broker.preview_request), DIRECT_HEADERS),
    ],
)
def test_every_header_the_code_reads_is_picked(functions, names) -> None:
    """Only the listed headers are decoded: a header read but not listed would silently be absent."""
    read = {m for f in functions for m in re.findall(r"headers\.get\(\"([a-z-]+)\"", inspect.getsource(f))}
    assert read and {n.encode() for n in read} <= names


def test_each_proxy_kind_reads_none_of_the_other_kind_s_headers() -> None:
    assert not {h for h in FORWARD_AUTH_HEADERS["traefik"] if h.startswith(b"x-original")}
    assert not {h for h in FORWARD_AUTH_HEADERS["nginx"] if h.startswith(b"x-forwarded")}


def test_hot_metrics_expose_what_prometheus_client_s_own_would() -> None:
    """Auth checks, logins started, answers by status code and durations are plain numbers; their
    exposition must not differ."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from broker.metrics import DURATION_BUCKETS, Metrics

    ours = Metrics()
    reference = CollectorRegistry()
    ref_checks = Counter("preview_broker_auth_checks", "Forward-auth decisions by result", ["result"],
                         registry=reference)
    ref_started = Counter("preview_broker_logins_started", "Logins sent to the identity provider", ["mode"],
                          registry=reference)
    ref_latency = Histogram("preview_broker_request_duration_seconds", "Handling time by endpoint", ["endpoint"],
                            buckets=DURATION_BUCKETS, registry=reference)
    ref_requests = Counter("preview_broker_requests", "Answers by endpoint and status code", ["endpoint", "code"],
                           registry=reference)
    rng = random.Random(3)
    for _ in range(2_000):
        result, endpoint = rng.choice(["ok", "unauthenticated", "forbidden"]), rng.choice(["auth", "start"])
        seconds = rng.choice([*DURATION_BUCKETS, rng.random() / 100, rng.random() * 20])  # bounds are inclusive
        ours.auth_checks.labels(result).inc()
        ref_checks.labels(result).inc()
        mode = rng.choice(["gate", "relay"])
        ours.logins_started.labels(mode).inc()
        ref_started.labels(mode).inc()
        ours.latency.labels(endpoint).observe(seconds)
        ref_latency.labels(endpoint).observe(seconds)
        status = rng.choice([202, 401, 403, 302, 400, 500])
        ours.status_counts(endpoint)[status].value += 1
        ref_requests.labels(endpoint, str(status)).inc()

    def samples(registry) -> list[str]:
        lines = generate_latest(registry).decode().splitlines()
        return sorted(line.rsplit(" ", 1)[0] + f" {float(line.rsplit(' ', 1)[1]):.9g}"
                      for line in lines if line.startswith("preview_broker_") and "_created" not in line
                      and ("auth_checks" in line or "logins_started" in line or "requests_total" in line
                           or "preview_broker_request_duration" in line))

    assert samples(ours.registry) == samples(reference)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        ([(b"cookie", b"a=1; pb_bind=xyz; b=2")], "xyz"),
        ([(b"cookie", b"a=1"), (b"cookie", b"pb_bind=split")], "split"),  # HTTP/2 may send several
        ([(b"cookie", b"xpb_bind=no; pb_bindx=no")], None),
        ([(b"cookie", b'pb_bind="quoted"')], "quoted"),
    ],
)
def test_request_cookie_reads_one_cookie_of_all_cookie_headers(headers, expected) -> None:
    assert request_cookie(headers, "pb_bind") == expected


def test_cookie_value_reads_what_simplecookie_reads() -> None:
    rng = random.Random(8)
    names = ["pb_bind", "__Host-pb_session", "a", "pb_bindx", "xpb_bind"]
    for _ in range(3_000):
        parts = [f"{rng.choice(names)}={rng.choice(['v1', 'abc.def-_', '', 'x' * rng.randint(1, 30)])}"
                 for _ in range(rng.randint(0, 5))]
        header = "; ".join(parts)
        parsed = SimpleCookie()
        parsed.load(header)
        for name in names:
            # SimpleCookie keeps the last of a repeated name; browsers send one of each per path
            if sum(p.startswith(name + "=") for p in parts) <= 1:
                expected = parsed[name].value if name in parsed else None
                assert cookie_value(header, name) == expected, (header, name)


@pytest.mark.parametrize("url", ["https://idp.example.com/auth?x=1", "https://idp.example.com/authé?x=1",
                                 "https://idp.example.com/a b", 'https://pr-1.preview.example.com/a"<b>'])
def test_redirect_sends_the_same_protective_headers_on_both_paths(url: str) -> None:
    """The raw fast path and the quoting fallback differ only in how the Location is built."""
    headers = redirect(url, [b"c=1"]).raw_headers
    assert {n.lower().encode() for n in NO_STORE} <= {k for k, _ in headers}
    assert (b"set-cookie", b"c=1") in headers


def test_redirect_location_is_starlette_s() -> None:
    from starlette.responses import RedirectResponse

    rng = random.Random(6)
    # every printable ASCII character, the controls that could end a header line, and non-ASCII
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + ["\r", "\n", "\t", "\x00", "\x7f", "é", "\u2603", "%41", "%zz"]
    urls = ["https://pr-1.preview.example.com/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
            for _ in range(5_000)]
    ours = {u: dict(redirect(u).raw_headers)[b"location"] for u in urls}
    assert [u for u in urls if ours[u] != RedirectResponse(u).headers["location"].encode()] == []
    assert all(re.fullmatch(rb"[\x21-\x7e]+", location) for location in ours.values())  # nothing ends the line
