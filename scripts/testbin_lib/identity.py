"""The identity side: Dex (the tests' real IdP) and oauth2-proxy (what the benchmark compares with)."""

from __future__ import annotations

from .core import Tool

# Dex v2.45.1 plus fixes.  Its go.mod replaces github.com/dexidp/dex/api/v2 with
# ./api/v2; that directory is published as api/v2 v2.4.0 (the version its go.mod
# requires), while pseudo-versions of api/v2 at Dex's own commits are not served.
DEX_VERSION = "v0.0.0-20260303133905-11d2eeb52b42"
OAUTH2_PROXY_VERSION = "v7.15.6"

DEX = Tool(
    name="dex",
    module="github.com/dexidp/dex",
    version=DEX_VERSION,
    packages=(("github.com/dexidp/dex/cmd/dex", "dex"),),
    local_replaces="required",
)
OAUTH2_PROXY = Tool(
    name="oauth2-proxy",
    module="github.com/oauth2-proxy/oauth2-proxy/v7",
    version=OAUTH2_PROXY_VERSION,
    packages=(("github.com/oauth2-proxy/oauth2-proxy/v7", "oauth2-proxy"),),
)
