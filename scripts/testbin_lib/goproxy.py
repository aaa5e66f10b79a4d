"""The Go module proxy protocol (https://go.dev/ref/mod#goproxy-protocol) and go.mod files: what the
proxy serves, and the version replaces a wrapper module derives from a tool's local ones."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

from .core import Tool, escape, go_proxy, tool_error


class NotServed(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")


_connections = threading.local()


def _connection(base: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    # One kept-alive connection per thread: a new connection per request costs a DNS lookup
    # and a TLS handshake each, and hundreds of those in parallel stall for seconds.
    conn = getattr(_connections, "conn", None)
    if conn is None or getattr(_connections, "base", None) != base:
        cls = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
        conn = cls(base.netloc, timeout=60)
        _connections.conn, _connections.base = conn, base
    return conn


def proxy_get(module: str, version: str, suffix: str, method: str = "GET") -> bytes:
    url = f"{go_proxy()}/{escape(module)}/@v/{escape(version)}{suffix}"
    parts = urllib.parse.urlsplit(url)
    for attempt in range(3):
        conn = _connection(urllib.parse.urlsplit(go_proxy()))
        try:
            conn.request(method, parts.path, headers={"User-Agent": "preview-broker-testbin"})
            resp = conn.getresponse()
            body = resp.read() if method == "GET" or resp.status >= 400 else b""
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            _connections.conn = None
            if attempt == 2:
                raise NotServed(url, str(exc) or type(exc).__name__) from None
        else:
            if resp.status < 400:  # a 3xx points at where the file is stored
                return body
            if resp.status < 500 or attempt == 2:
                detail = body[:300].decode(errors="replace").strip()
                raise NotServed(url, f"{resp.status} {resp.reason}" + (f" ({detail})" if detail else ""))
        time.sleep(attempt)  # a kept-alive connection the server closed: retry at once
    raise AssertionError("unreachable")


def resolve(module: str, query: str) -> str:
    """A tag, commit or version, as the proxy names it (its .info)."""
    return json.loads(proxy_get(module, query, ".info"))["Version"]


def parse_gomod(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(requires: module -> version, local replaces: module -> ./dir) of a go.mod, blocks included."""
    requires: dict[str, str] = {}
    replaces: dict[str, str] = {}
    block = ""
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if line == ")":
            block = ""
            continue
        words = line.split()
        if words[0] in ("require", "replace", "exclude", "retract", "module", "go", "toolchain", "godebug", "tool"):
            if words[1:] == ["("]:
                block = words[0]
                continue
            kind, words = words[0], words[1:]
        else:
            kind = block
        if kind == "require" and len(words) >= 2:
            requires[words[0]] = words[1]
        elif kind == "replace" and "=>" in words:
            left, right = words[: words.index("=>")], words[words.index("=>") + 1:]
            if len(right) == 1 and right[0].startswith(("./", "../")):
                replaces[left[0]] = right[0]
    return requires, replaces


def served_gomod(tool: Tool) -> str:
    try:
        return proxy_get(tool.module, tool.version, ".mod").decode()
    except NotServed as exc:
        raise tool_error(tool, "fetching its go.mod", str(exc)) from None


def derive_replaces(tool: Tool, gomod: str) -> list[tuple[str, str]]:
    """Turn the served go.mod's `replace X => ./dir` lines into `X => X <version>`.

    Derived from the go.mod itself, never hard-coded (see Tool.local_replaces).
    """
    requires, local = parse_gomod(gomod)
    if tool.local_replaces == "staging":
        staging = [m for m, target in local.items() if target.startswith("./staging/")]
        if not staging:
            raise tool_error(tool, "reading its go.mod", "no ./staging replaces found; has the layout changed?")
    # Only what the go.mod requires is in the build graph: not etcd's "=> ./FORBIDDEN_DEPENDENCY"
    # guards, nor staging modules the kubernetes module itself never imports (sample-controller).
    used = [m for m in local if m in requires]
    if tool.local_replaces == "staging":
        version = "v0." + tool.version.lstrip("v").split(".", 1)[1]
        return [(m, version) for m in used]
    if tool.local_replaces == "required":
        return [(m, requires[m]) for m in used]
    revision = tool.version.rsplit("-", 1)[-1] if tool.version.startswith("v0.0.0-") else tool.version
    out = []
    for module in used:
        try:
            out.append((module, resolve(module, revision)))
        except NotServed as exc:
            raise tool_error(tool, f"resolving {module}@{revision} (a local replace of its go.mod)", str(exc)) from None
    return out


def check_served(module: str, version: str, whole: bool = True) -> str | None:
    """None when the proxy serves module@version, else why not.

    `whole` asks for .info, .mod and .zip (what a build downloads of the tool itself and of
    replace targets); otherwise the .mod alone, which the go command reads for every module in
    the graph (it downloads .zip only for those whose packages are built, and the proxy
    refuses all three of a version it does not serve).
    """
    try:
        if whole:
            proxy_get(module, version, ".info")
        proxy_get(module, version, ".mod")
        if whole:
            proxy_get(module, version, ".zip", method="HEAD")
    except NotServed as exc:
        return str(exc)
    return None
