"""Build the real programs the tests run against, from their Go modules, once.

Usage: scripts/testbin [--list] [--check] [--pin NAME=VERSION ...] [NAME ...]

Builds, only when missing, pinned versions of etcd, kube-apiserver,
kube-controller-manager, dex, helm, oauth2-proxy (for the benchmark), promtool
(the alerts' and dashboard's queries) and actionlint (the release workflow), the
parts of the tests' one-node cluster ("kube-node": kubelet, kube-scheduler,
kube-proxy and the pause program of the same Kubernetes release; "containerd":
containerd, its runc shim and ctr; "runc"; "cni-plugins": bridge, host-local,
loopback and portmap into cni/), and copies the real
CloudNativePG and ACK S3 CRDs ("crds"), into a cache directory outside the git
tree and prints that directory on its LAST line (other scripts read it).  With
NAMEs, builds only those.

runc needs cgo and libseccomp's development files (Debian: libseccomp-dev,
which `make system-deps` installs as root); pause needs a static C library
(libc6-dev).  Everything else builds with CGO_ENABLED=0.

  --list     print every pin (tool, module@version, what it provides)
  --check    ask the Go module proxy, without building, whether it still serves
             every version a build would fetch (each tool, every module its
             go.mod requires, each derived replace target, each CRD source);
             exit 1 naming the module, the version and the step when not.
             `.ci/run` runs it before the tests, so a warm cache hides nothing.
  --pin NAME=VERSION
             build NAME from another version of its module (repeatable; also
             $PREVIEW_BROKER_TESTBIN_PINS="dex=v0.0.0-...,helm=v3.22.0").
             For "crds", NAME is the CRD source's module path.

The cache directory is $PREVIEW_BROKER_TESTBIN, else
$XDG_CACHE_HOME/preview-broker/testbin, else ~/.cache/preview-broker/testbin.
A cold build (empty Go module cache and testbin cache) is proven with

  GOMODCACHE=$(mktemp -d) PREVIEW_BROKER_TESTBIN=$(mktemp -d) scripts/testbin

If $KUBEBUILDER_ASSETS holds etcd, kube-apiserver and kube-controller-manager
(the envtest convention), those are linked into the cache instead of built.

Why wrapper modules: `go install pkg@version` refuses modules whose go.mod has
replace directives (k8s.io/kubernetes replaces its ./staging modules, etcd and
dex replace sibling directories).  A tiny module that requires the real one
and maps each local replace to a published version builds the same code.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from . import catalog
from .check import check
from .controlplane import link_kubebuilder_assets
from .core import PINS_ENV, BuildError, cache_dir, log
from .gobuild import build, fetch_crds, is_built


def parse_pins(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """--pin NAME=VERSION (and $PREVIEW_BROKER_TESTBIN_PINS) -> pins; returns the other arguments too."""
    specs = [s for s in os.environ.get(PINS_ENV, "").split(",") if s.strip()]
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--pin":
            specs.append(next(args, ""))
        elif arg.startswith("--pin="):
            specs.append(arg.removeprefix("--pin="))
        else:
            rest.append(arg)
    known = set(catalog.TOOLS) | {s.module for s in catalog.CRD_SOURCES}
    pins: dict[str, str] = {}
    for spec in specs:
        name, _, version = spec.strip().partition("=")
        if name not in known or not re.fullmatch(r"v\d+\.\d+\.\d+\S*", version):
            raise SystemExit(
                f"testbin: bad pin {spec.strip()!r}: expected NAME=vX.Y.Z with NAME one of {', '.join(sorted(known))}"
            )
        pins[name] = version
    return pins, rest


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip())
        return 0
    pins, argv = parse_pins(argv)
    if "--list" in argv:
        for t in catalog.tools(pins).values():
            print(f"{t.name:14} {t.module}@{t.version} -> {', '.join(t.binaries)}")
        for src in catalog.crd_sources(pins):
            print(f"{'crds':14} {src.module}@{src.version} -> {', '.join(Path(f).name for f in src.files)}")
        return 0
    checking = "--check" in argv
    names = [a for a in argv if a != "--check"] or [*catalog.TOOLS, "crds"]
    unknown = [n for n in names if n not in catalog.TOOLS and n != "crds"]
    if unknown:
        print(f"testbin: unknown program {', '.join(unknown)} (known: {', '.join(catalog.TOOLS)}, crds)", file=sys.stderr)
        return 2
    if checking:
        return check(names, pins)
    if shutil.which("go") is None:
        print("testbin: the `go` command is missing; install Go >= 1.26 (golang.org/dl or your distro)", file=sys.stderr)
        return 1
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    todo = [catalog.tools(pins)[n] for n in names if n != "crds"]
    if "kube" in names and "etcd" in names and link_kubebuilder_assets(out):
        todo = [t for t in todo if t.name not in ("kube", "etcd")]
    try:
        if "crds" in names:
            fetch_crds(out, catalog.crd_sources(pins))
        for tool in todo:
            if is_built(tool, out):
                continue
            log(f"building {', '.join(tool.binaries)} from {tool.module}@{tool.version}")
            build(tool, out)
    except BuildError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(out)
    return 0
