#!/usr/bin/env python3
"""Forward-auth throughput and latency: preview-broker vs oauth2-proxy vs a bare ASGI app.

    .venv/bin/python bench/forward_auth.py [--duration 10] [--rounds 5] [--connections 64] [--report]

Each server runs pinned to CPU 0 (taskset), wrk runs pinned to CPU 1 with the
same connections and duration; servers are measured in alternating order over
several rounds and the medians are reported.  Sessions are real: oauth2-proxy's
cookie comes from a real login against Dex, preview-broker's from its own
session codec with the broker's signing key.

Scenarios: /oauth2/auth with a valid session (the hot path), with 10,000 distinct valid
sessions and with 10,000 distinct junk cookies (forged, expired, truncated, wrong key)
rotated by a wrk Lua script, without a session (401), the login redirects (/oauth2/start
for both, /oauth2/relay for the broker), and what an anonymous client can hammer: junk
starts, relays, callbacks and tickets.  For every broker scenario it counts the broker's
log lines per 10,000 requests (the broker logs at INFO, as deployed).  The last line is
the one-line summary `make bench-quick` shows.  With --report, writes its section of
docs/benchmarks.md and its PNG plot.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.report import DOCS, machine, update_section  # noqa: E402
from tests.support.dex import start_dex  # noqa: E402
from tests.support.procs import Proc, free_port, http_ok, wait_until  # noqa: E402
from tests.support.testbin import binary  # noqa: E402

HOST = "pr-1.preview.example.com"
RELAY_CLIENT = "pr-app"
COOKIES = 10_000
OP_CLIENT_ID = "oauth2-proxy"
OP_CLIENT_SECRET = "oauth2-proxy-bench-secret"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int = 0
    requests: int = 0
    log_lines: int = 0


@dataclass
class Case:
    server: str
    scenario: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    expect: int = 0  # the status every request of the scenario gets
    cookies: Path | None = None  # one Cookie header per line, rotated by wrk's Lua script
    results: list[Result] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.results)

    def log_lines_per_10k(self) -> float:
        requests = sum(r.requests for r in self.results)
        return 10_000 * sum(r.log_lines for r in self.results) / requests if requests else float("nan")


def need(tool: str, how: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise SystemExit(f"bench: {tool} is missing: {how}")
    return path


ROTATE_LUA = """
local cookies = {}
for line in io.lines("%s") do cookies[#cookies + 1] = line end
local i = 0
request = function()
  i = i %% #cookies + 1
  wrk.headers["Cookie"] = cookies[i]
  return wrk.format(nil)
end
"""


def wrk(url: str, headers: dict[str, str], duration: float, connections: int, cookies: Path | None = None,
        log: Path | None = None) -> Result:
    cmd = ["taskset", "-c", "1", need("wrk", "apt-get install wrk"), "-t1", f"-c{connections}",
           f"-d{max(1, int(round(duration)))}s", "--latency", "--timeout", "5s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if cookies is not None:
        script = cookies.with_suffix(".lua")
        script.write_text(ROTATE_LUA % cookies)
        cmd += ["-s", str(script)]
    lines_before = _lines(log)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    log_lines = _lines(log) - lines_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * UNITS[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Result(rps, pct("50"), pct("99"), int(non2xx.group(1)) if non2xx else 0, requests, log_lines)


def _lines(log: Path | None) -> int:
    if log is None or not log.exists():
        return 0
    with log.open("rb") as f:
        return sum(1 for _ in f)


def pinned(argv: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *argv]


def start_servers(work: Path) -> tuple[dict[str, Proc], dict[str, int], str]:
    procs: dict[str, Proc] = {}
    ports = {"broker": free_port(), "oauth2-proxy": free_port(), "bare-asgi": free_port()}
    op_callback = f"http://127.0.0.1:{ports['oauth2-proxy']}/oauth2/callback"
    dex = start_dex(work / "dex", ["http://auth.preview.example.com/oauth2/callback"], extra_clients=[
        {"id": OP_CLIENT_ID, "secret": OP_CLIENT_SECRET, "name": "oauth2-proxy", "redirectURIs": [op_callback]}])
    keys = secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    env.update({
        "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
        "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
        "PREVIEW_BROKER_ALLOWED_HOSTS": HOST,
        "PREVIEW_BROKER_PROVIDER": "oidc",
        "PREVIEW_BROKER_OIDC_ISSUER": dex.issuer,
        "PREVIEW_BROKER_CLIENT_ID": "preview-broker",
        "PREVIEW_BROKER_CLIENT_SECRET": "unused-in-this-benchmark",
        "PREVIEW_BROKER_SECRET_KEYS": keys,
        "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
        "PREVIEW_BROKER_RELAY_CLIENT_IDS": RELAY_CLIENT,
        # INFO, as deployed: the log lines each scenario costs are part of what is measured.
        "PREVIEW_BROKER_LOG_LEVEL": "INFO",
    })
    procs["broker"] = Proc("broker", pinned([sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1",
                                             "--port", str(ports["broker"]), "--metrics-port", "0"]),
                           work / "broker.log", env=env).start()
    procs["bare-asgi"] = Proc("bare-asgi", pinned([
        sys.executable, "-m", "uvicorn", "bench.bare_asgi:app", "--host", "127.0.0.1", "--port",
        str(ports["bare-asgi"]), "--no-access-log", "--log-level", "error", "--no-server-header",
        "--no-date-header", "--no-proxy-headers"]), work / "bare.log",
        env={**os.environ, "PYTHONPATH": str(ROOT)}).start()
    procs["oauth2-proxy"] = Proc("oauth2-proxy", pinned([
        str(binary("oauth2-proxy")),
        f"--http-address=127.0.0.1:{ports['oauth2-proxy']}",
        "--provider=oidc", f"--oidc-issuer-url={dex.issuer}",
        f"--client-id={OP_CLIENT_ID}", f"--client-secret={OP_CLIENT_SECRET}",
        f"--redirect-url={op_callback}",
        f"--cookie-secret={secrets.token_hex(16)}", "--cookie-secure=false",
        "--email-domain=*", "--upstream=static://202", "--skip-provider-button=true",
        "--set-xauthrequest=true", "--reverse-proxy=true", "--approval-prompt=auto",
        # The broker logs no line per request; neither should oauth2-proxy in a fair comparison.
        "--request-logging=false", "--auth-logging=false", "--standard-logging=false",
    ]), work / "oauth2-proxy.log", env={**os.environ, "GOMAXPROCS": "1"}).start()
    wait_until(http_ok(f"http://127.0.0.1:{ports['broker']}/readyz"), "broker", 30, procs["broker"])
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{ports['bare-asgi']}/").status_code == 202, "bare", 30,
               procs["bare-asgi"])
    wait_until(http_ok(f"http://127.0.0.1:{ports['oauth2-proxy']}/ping"), "oauth2-proxy", 30, procs["oauth2-proxy"])
    procs["dex"] = dex.proc
    return procs, ports, keys


def oauth2_proxy_cookie(port: int) -> str:
    """A real login through oauth2-proxy and Dex's mock connector; returns the session Cookie header."""
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(follow_redirects=False, timeout=20) as c:
        r = c.get(f"{base}/oauth2/start", params={"rd": "/"})
        authz = r.headers["location"]
        issuer_auth, _, query = authz.partition("?")
        r = c.get(f"{issuer_auth}/mock?{query}")
        while r.status_code in (301, 302, 303) and not r.headers["location"].startswith(base):
            r = c.get(urljoin(str(r.url), r.headers["location"]))
        assert r.status_code in (301, 302, 303), f"Dex login failed: {r.status_code} {r.url} {r.text[-1500:]}"
        r = c.get(r.headers["location"])
        assert r.status_code in (302, 303), f"oauth2-proxy callback failed: {r.status_code} {r.text[:200]}"
        jar = "; ".join(f"{k}={v}" for k, v in c.cookies.items() if k.startswith("_oauth2_proxy")
                        and not k.startswith("_oauth2_proxy_csrf"))
        check = c.get(f"{base}/oauth2/auth", headers={"Cookie": jar})
        assert check.status_code == 202, f"oauth2-proxy session not accepted: {check.status_code}"
        return jar


def _codec(keys: list[str], clock):  # type: ignore[no-untyped-def]
    from broker.replay import ReplayGuard
    from broker.sessions import SessionCodec
    from broker.tokens import make_serializers

    return SessionCodec(make_serializers(keys, clock), ReplayGuard(clock), session_ttl=43200, ticket_ttl=60)


def broker_cookie(keys: str) -> str:
    from broker.identity import Identity
    from foundation.clock import system_clock

    return "__Host-pb_session=" + _codec([keys], system_clock).issue(HOST, Identity("ada", "ada@example.com", True,
                                                                                     ("eng",)))


def cookie_files(keys: str, work: Path) -> tuple[Path, Path]:
    """10,000 distinct valid sessions, and 10,000 distinct junk ones of four kinds in turn."""
    import random

    from broker.identity import Identity
    from foundation.clock import FrozenClock, system_clock

    rng = random.Random(21)
    now = system_clock()
    valid_codec, expired_codec = _codec([keys], system_clock), _codec([keys], FrozenClock(now - 43200 - 3600))
    other_codec = _codec([secrets.token_urlsafe(32)], system_clock)
    valid, junk = [], []
    for i in range(COOKIES):
        identity = Identity(f"user{i}", f"user{i}@example.com", True, ("eng",))
        token = valid_codec.issue(HOST, identity)
        valid.append(token)
        kind = i % 4
        if kind == 0:  # forged: well-formed, random payload, timestamp and signature
            junk.append(".".join(secrets.token_urlsafe(n) for n in (rng.randint(40, 90), 4, 20)))
        elif kind == 1:
            junk.append(expired_codec.issue(HOST, identity))
        elif kind == 2:
            junk.append(token[: rng.randint(1, len(token) - 1)])
        else:
            junk.append(other_codec.issue(HOST, identity))
    paths = (work / "cookies-valid.txt", work / "cookies-junk.txt")
    for path, tokens in zip(paths, (valid, junk)):
        path.write_text("".join(f"__Host-pb_session={t}\n" for t in tokens))
    return paths


def cases(ports: dict[str, int], op_cookie: str, pb_cookie: str, valid: Path, junk: Path) -> list[Case]:
    b, o, a = (f"http://127.0.0.1:{ports[k]}" for k in ("broker", "oauth2-proxy", "bare-asgi"))
    fwd = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": HOST, "X-Forwarded-Uri": "/app/page?x=1"}
    relay = urlencode({"return_to": f"https://{HOST}/cb", "client_id": RELAY_CLIENT, "response_type": "code",
                       "state": "s"})
    # Login redirects reach the broker through its Ingress, under its public host name; a gate
    # start carries the hash of the preview host's login cookie, a relay start comes from the app.
    public = {"Host": "auth.preview.example.com"}
    start = urlencode({"rd": f"https://{HOST}/app", "pl": "L" * 32})
    ticket = {**fwd, "X-Forwarded-Uri": "/oauth2/ticket?ticket=junk.AAAA.AAAA"}
    return [
        Case("preview-broker", "auth-valid", f"{b}/oauth2/auth", {**fwd, "Cookie": pb_cookie}, 202),
        Case("oauth2-proxy", "auth-valid", f"{o}/oauth2/auth", {**fwd, "Cookie": op_cookie}, 202),
        # The ceiling gets the very same request (cookie included): only the answer differs.
        Case("bare-asgi", "auth-valid", f"{a}/", {**fwd, "Cookie": pb_cookie}, 202),
        Case("preview-broker", "auth-valid-10k", f"{b}/oauth2/auth", fwd, 202, valid),
        Case("preview-broker", "auth-junk-10k", f"{b}/oauth2/auth", fwd, 401, junk),
        Case("preview-broker", "auth-none", f"{b}/oauth2/auth", fwd, 401),
        Case("oauth2-proxy", "auth-none", f"{o}/oauth2/auth", fwd, 401),
        Case("preview-broker", "start", f"{b}/oauth2/start?{start}", public, 302),
        Case("oauth2-proxy", "start", f"{o}/oauth2/start?" + urlencode({"rd": "/app"}), {}, 302),
        Case("preview-broker", "relay", f"{b}/oauth2/relay?{relay}", {**public, "Referer": f"https://{HOST}/"}, 302),
        Case("preview-broker", "start-junk", f"{b}/oauth2/start?rd=https://evil.example/", public, 400),
        Case("preview-broker", "relay-junk", f"{b}/oauth2/relay?return_to=https://evil.example/", public, 400),
        Case("preview-broker", "callback-junk", f"{b}/oauth2/callback?code=x&state=junk.AAAA.AAAA", public, 400),
        Case("preview-broker", "ticket-junk", f"{b}/oauth2/auth", ticket, 400),
    ]


def sanity(case: Case) -> None:
    headers = dict(case.headers)
    if case.cookies is not None:
        for line in case.cookies.read_text().splitlines()[:20]:
            r = httpx.get(case.url, headers={**headers, "Cookie": line})
            if r.status_code != case.expect:
                raise SystemExit(f"bench: {case.server} {case.scenario} answered {r.status_code}, expected {case.expect}")
        return
    r = httpx.get(case.url, headers=headers)
    if r.status_code != case.expect:
        raise SystemExit(f"bench: {case.server} {case.scenario} answered {r.status_code}, expected {case.expect}")


def table(all_cases: list[Case]) -> str:
    lines = ["| scenario | server | req/s (median) | p50 ms | p99 ms | log lines / 10k requests | runs |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for c in all_cases:
        logs = f"{c.log_lines_per_10k():.1f}" if c.server == "preview-broker" else "n/a"
        lines.append(f"| {c.scenario} | {c.server} | {c.median('rps'):,.0f} | {c.median('p50_ms'):.2f} | "
                     f"{c.median('p99_ms'):.2f} | {logs} | {len(c.results)} |")
    return "\n".join(lines)


def plots(all_cases: list[Case], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{c.scenario}\n{c.server}" for c in all_cases]
    colors = ["#2b7bb9" if c.server == "preview-broker" else "#e07b39" if c.server == "oauth2-proxy" else "#999"
              for c in all_cases]
    axes[0].bar(labels, [c.median("rps") for c in all_cases], color=colors)
    axes[0].set_title("throughput (median req/s, one core)")
    axes[1].bar(labels, [c.median("p99_ms") for c in all_cases], color=colors)
    axes[1].set_title("p99 latency (ms)")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    path = out / "bench-forward-auth.png"
    fig.savefig(path, dpi=120)
    files.append(path)
    return files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--report", action="store_true", help="write its section of benchmarks.md and its plots")
    p.add_argument("--docs", type=Path, default=DOCS, help="where benchmarks.md and the plots go (default docs/)")
    a = p.parse_args()
    need("taskset", "apt-get install util-linux")
    need("wrk", "apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="pb-bench-"))
    print(f"bench: starting Dex, preview-broker, oauth2-proxy and a bare ASGI app (logs in {work})", file=sys.stderr)
    procs, ports, keys = start_servers(work)
    log = work / "broker.log"
    try:
        all_cases = cases(ports, oauth2_proxy_cookie(ports["oauth2-proxy"]), broker_cookie(keys),
                          *cookie_files(keys, work))
        for c in all_cases:
            sanity(c)
            wrk(c.url, c.headers, 1, a.connections, c.cookies)  # warm-up, not measured
        for rnd in range(a.rounds):
            order = all_cases if rnd % 2 == 0 else list(reversed(all_cases))
            for c in order:
                c.results.append(wrk(c.url, c.headers, a.duration, a.connections, c.cookies,
                                     log if c.server == "preview-broker" else None))
            print(f"bench: round {rnd + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    finally:
        for proc in procs.values():
            proc.stop()
    print(table(all_cases))
    get = {(c.server, c.scenario): c for c in all_cases}
    pb, op, bare = (get[(s, "auth-valid")] for s in ("preview-broker", "oauth2-proxy", "bare-asgi"))
    ratio = pb.median("rps") / op.median("rps")
    ceiling = pb.median("rps") / bare.median("rps")
    valid10k, junk10k = get[("preview-broker", "auth-valid-10k")], get[("preview-broker", "auth-junk-10k")]
    junk_ratio = junk10k.median("rps") / valid10k.median("rps")
    anonymous = ", ".join(f"{name} {get[('preview-broker', name)].log_lines_per_10k():.1f}"
                          for name in ("auth-junk-10k", "start-junk", "relay-junk", "callback-junk", "ticket-junk"))
    print(f"\nforward auth vs bare ASGI ceiling: {ceiling:.2f}; p99 preview-broker {pb.median('p99_ms'):.2f} ms, "
          f"oauth2-proxy {op.median('p99_ms'):.2f} ms")
    print(f"junk cookies: refused {junk10k.median('rps'):.0f} req/s, valid (10,000 cookies) "
          f"{valid10k.median('rps'):.0f} req/s, ratio {junk_ratio:.2f}; log lines per 10,000 requests: {anonymous}")
    if a.report:
        images = plots(all_cases, a.docs)
        cmd = f"bench/forward_auth.py --duration {a.duration:g} --rounds {a.rounds} --connections {a.connections}"
        update_section(a.docs, "forward-auth", f"""## Forward auth and login redirects: preview-broker vs oauth2-proxy

Machine: {machine()}.

Command: `{cmd}` (servers pinned to CPU 0 with taskset, wrk on CPU 1, {a.connections} connections,
{a.duration:g} s per run, {a.rounds} alternating rounds, medians).

{table(all_cases)}

Forward auth: preview-broker / oauth2-proxy = **{ratio:.2f}**; preview-broker / bare ASGI = **{ceiling:.2f}**.
Junk cookies (10,000 distinct: forged, expired, truncated, wrong key) are refused at **{junk_ratio:.2f}** times
the rate of 10,000 distinct valid ones; log lines per 10,000 anonymous requests: {anonymous}.
Login redirects: /oauth2/start **{get[("preview-broker", "start")].median("rps"):,.0f}** req/s,
/oauth2/relay **{get[("preview-broker", "relay")].median("rps"):,.0f}** req/s on one core.

""" + "".join(f"![{i.stem}]({i.name})\n" for i in images))
    print(f"forward-auth: preview-broker {pb.median('rps'):.0f} req/s, oauth2-proxy {op.median('rps'):.0f} req/s, "
          f"ratio {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
