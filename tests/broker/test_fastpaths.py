"""The hot paths' hand-tuned helpers give exactly what the general library functions give.

parse_params, encode_query, the token serializer and pick_headers replace slower general
machinery on the login and forward-auth paths; each is checked here against the library
behaviour it stands in for, over crafted cases and a seeded random corpus.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import re
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.signer import HMACAlgorithm

from broker.app import MAX_PARAMS, Broker, _wants_html, parse_params, unquote_field
from broker.clock import FrozenClock
from broker.errors import BadRequest
from broker.forwarded import DIRECT_HEADERS, FORWARD_AUTH_HEADERS, from_direct, from_forward_auth
from broker.pages import NO_STORE
from broker.tokens import SESSION_SALT, STATE_SALT, dump, load, make_serializers
from broker.web import encode_query, pick_headers, redirect
from tests.broker.conftest import KEY_NEW, KEY_OLD

# Characters that matter to query parsing: separators, escapes, plus, and non-ASCII.
ALPHABET = "ab=&%+;2F3Ac9 é/?#\x00~._-"
CRAFTED = [
    "", "a", "a=", "=a", "a=1&b=2", "a=1&&b=2", "&", "&&a=1&", "a=%zz", "a=%2", "a=%e9", "a=%C3%A9",
    "a=%C3", "a+b=c+d", "a=1=2", "a%3Db=c", "%61=1", "a=%00", "rd=https%3A%2F%2Fpr-1.preview.example.com%2Fapp",
    "a=1;b=2", "a=" + "x" * 5000, "k" * 200 + "=1", "a=1&a=2", "a=1&%61=2",
]


def _library(query: str) -> dict[str, str] | str:
    """What parse_qsl plus the broker's rules decide: the params, or the refusal reason."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return "bad_query"
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            return "duplicate_param"
        if len(value) > 4096 or len(key) > 128:
            return "oversized_param"
        out[key] = value
    return out


def _ours(query: str) -> dict[str, str] | str:
    try:
        return parse_params(query)
    except BadRequest as exc:
        return exc.reason


def _corpus(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(count)]


@pytest.mark.parametrize("query", CRAFTED)
def test_parse_params_matches_parse_qsl_on_crafted_queries(query: str) -> None:
    assert _ours(query) == _library(query)


def test_parse_params_matches_parse_qsl_on_a_random_corpus() -> None:
    mismatches = [q for q in _corpus(1, 20_000) if _ours(q) != _library(q)]
    assert mismatches == []


def _library_unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        return "UnicodeDecodeError"


def _our_unquote(text: str) -> str:
    try:
        return unquote_field(text)
    except UnicodeDecodeError:
        return "UnicodeDecodeError"


def test_unquote_field_is_unquote_plus_strict() -> None:
    """The table of ASCII escapes covers every spelling urllib accepts; the rest falls back to urllib."""
    crafted = ["%2f%2F%2a%2A", "%7f%7F%80", "%C3%A9", "%C3", "%e9", "%g1", "%1", "%", "%%41", "a+b%2Bc", "é%41é",
               "%00", "%41%42%43" * 50, "https%3A%2F%2Fpr-1.preview.example.com%2Fapp%3Fx%3D1"]
    rng = random.Random(4)
    alphabet = "%%%+0123456789abcdefABCDEFgGxé ~"
    corpus = crafted + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16))) for _ in range(30_000)]
    mismatches = [t for t in corpus if _our_unquote(t) != _library_unquote(t)]
    assert mismatches == []


@pytest.mark.parametrize("fields", [MAX_PARAMS - 1, MAX_PARAMS, MAX_PARAMS + 1])
def test_parse_params_field_limit_is_parse_qsl_s(fields: int) -> None:
    query = "&".join(f"k{i}=v" for i in range(fields))
    assert _ours(query) == _library(query)
    assert isinstance(_ours(query), dict) == (fields <= MAX_PARAMS)


def test_encode_query_is_urlencode_with_percent_20() -> None:
    rng = random.Random(2)
    for _ in range(5_000):
        params = {
            "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 8))): "".join(
                rng.choice(ALPHABET) for _ in range(rng.randint(0, 16))
            )
            for _ in range(rng.randint(1, 5))
        }
        assert encode_query(params) == urlencode(params, quote_via=quote)


def test_tokens_are_plain_itsdangerous_tokens_both_ways() -> None:
    """Faster to produce, same format: a vanilla serializer with the same keys reads ours and vice versa."""
    clock = FrozenClock()
    ours = make_serializers([KEY_OLD, KEY_NEW], clock)
    vanilla = URLSafeTimedSerializer([KEY_OLD, KEY_NEW], salt=STATE_SALT)
    payload = {"m": "g", "t": "https://pr-1.preview.example.com/é?x=1", "j": "abc", "b": "x" * 32}
    assert vanilla.loads(dump(ours.state, payload)) == payload
    assert load(ours.state, vanilla.dumps(payload), 10**12) == payload
    # byte for byte what vanilla itsdangerous writes (signed with the newest key) at the same time
    class AtClock(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    vanilla_signer = AtClock([KEY_OLD, KEY_NEW], salt=STATE_SALT)
    rng = random.Random(5)
    values = [b"", b"x", b"eyJ9" * 100, *(rng.randbytes(rng.randint(0, 300)) for _ in range(200))]
    for value in values:
        assert ours.state.make_signer().sign(value) == vanilla_signer.sign(value)
    clock.advance(86_400 * 400)
    assert ours.state.make_signer().sign(b"later") == vanilla_signer.sign(b"later")
    # and a whole small token (one vanilla leaves uncompressed) is the same string
    assert dump(ours.state, {"j": "abc"}) == URLSafeTimedSerializer(
        [KEY_OLD, KEY_NEW], salt=STATE_SALT, signer=AtClock
    ).dumps({"j": "abc"})
    # a signer configured with another algorithm than its digest's HMAC signs the generic way
    signer_class = type(ours.state.make_signer())
    for kwargs in ({"digest_method": hashlib.sha256}, {"algorithm": HMACAlgorithm(hashlib.sha512)}):
        mine = signer_class([KEY_OLD, KEY_NEW], salt=STATE_SALT, **kwargs)
        assert mine.sign(b"v") == AtClock([KEY_OLD, KEY_NEW], salt=STATE_SALT, **kwargs).sign(b"v")
        assert mine.unsign(mine.sign(b"v")) == b"v"
    # zlib-compressed tokens (what vanilla writes for larger payloads) still load
    big = {"g": ["group-%d" % i for i in range(200)]}
    compressed = URLSafeTimedSerializer([KEY_NEW], salt=SESSION_SALT).dumps(big)
    assert compressed.startswith(".")
    assert load(ours.session, compressed, 10**12) == big


def test_pick_headers_decodes_the_named_ones_and_the_last_repeat_wins() -> None:
    raw = [(b"host", b"a"), (b"cookie", b"x=1"), (b"host", b"b"), (b"x-h", "é".encode("latin-1")), (b"other", b"o")]
    assert pick_headers(raw, frozenset({b"host", b"x-h", b"cookie"})) == {"host": "b", "cookie": "x=1", "x-h": "é"}


@pytest.mark.parametrize(
    ("functions", "names"),
    [
        ((from_forward_auth, Broker.forward_auth, _wants_html), FORWARD_AUTH_HEADERS),
        ((from_direct, Broker.preview_request), DIRECT_HEADERS),
    ],
)
def test_every_header_the_code_reads_is_picked(functions, names) -> None:
    """Only the listed headers are decoded: a header read but not listed would silently be absent."""
    read = {m for f in functions for m in re.findall(r"headers\.get\(\"([a-z-]+)\"", inspect.getsource(f))}
    assert read and {n.encode() for n in read} <= names


def test_hot_metrics_expose_what_prometheus_client_s_own_would() -> None:
    """Auth checks, logins started and durations are plain numbers; their exposition must not differ."""
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

    def samples(registry) -> list[str]:
        lines = generate_latest(registry).decode().splitlines()
        return sorted(line.rsplit(" ", 1)[0] + f" {float(line.rsplit(' ', 1)[1]):.9g}"
                      for line in lines if line.startswith("preview_broker_") and "_created" not in line
                      and ("auth_checks" in line or "logins_started" in line or "duration" in line))

    assert samples(ours.registry) == samples(reference)


def test_b64_is_unpadded_urlsafe_base64() -> None:
    import base64
    import os

    from broker.app import _b64

    for n in range(0, 80):
        data = os.urandom(n)
        assert _b64(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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
    from starlette.requests import Request

    from broker.app import request_cookie

    request = Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})
    assert request_cookie(request, "pb_bind") == expected


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
