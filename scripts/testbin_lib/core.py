"""The records every family of tools is written in, the error that names a failing module, and the
places testbin uses: its cache directory and the module proxy."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PINS_ENV = "PREVIEW_BROKER_TESTBIN_PINS"


def go_proxy() -> str:
    """The first real proxy of $GOPROXY (the go command's own default otherwise)."""
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY", "")):
        if entry.startswith(("http://", "https://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def escape(path: str) -> str:
    """Case-encode a module path or version for proxy URLs ("Azure" -> "!azure")."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


@dataclass(frozen=True)
class CProgram:
    """A C program compiled from a file of the tool's own module (Kubernetes's pause)."""

    source: str  # path inside the module
    binary: str
    cflags: Callable[[str], list[str]]


@dataclass(frozen=True)
class Tool:
    name: str  # cache stamp name
    module: str
    version: str
    packages: tuple[tuple[str, str], ...]  # (package path, binary name, may sit in a subdirectory)
    ldflags: Callable[[str], str] = lambda version: "-s -w"
    # How the module's local `replace X => ./dir` directives become version replaces:
    # "staging":       k8s.io/X => k8s.io/X v0.N.P (k8s.io/kubernetes's ./staging modules);
    # "same-revision": X at the module's own tag or commit (etcd's sibling modules);
    # "required":      X at the version the module's go.mod requires (dex's api/v2).
    local_replaces: str = "same-revision"
    tags: str = ""  # go build -tags
    cgo: tuple[str, ...] | None = None  # None: CGO_ENABLED=0; else the pkg-config libraries cgo links
    c_programs: tuple[CProgram, ...] = ()

    @property
    def binaries(self) -> list[str]:
        return [binary for _, binary in self.packages] + [c.binary for c in self.c_programs]


@dataclass(frozen=True)
class CrdSource:
    """Real CRDs the controller's objects are validated against: files copied out of a Go module."""

    module: str
    version: str
    files: tuple[str, ...]
    subdir: str = ""  # under crds/: the control plane installs crds/*.yaml; a subdirectory is opt-in


class BuildError(Exception):
    """A pinned module could not be fetched or built: names the module, the version, the step, and the way out."""

    def __init__(self, name: str, module: str, version: str, step: str, detail: str) -> None:
        self.module, self.version, self.step = module, version, step
        hint = (
            f"to use another version: scripts/testbin --pin {name}=VERSION "
            f"(or {PINS_ENV}={name}=VERSION make test); served versions: {go_proxy()}/{escape(module)}/@v/list"
        )
        super().__init__(f"testbin: {module}@{version} failed at {step}: {detail}\ntestbin: {hint}")


def tool_error(tool: Tool, step: str, detail: str) -> BuildError:
    return BuildError(tool.name, tool.module, tool.version, step, detail)


def cache_dir() -> Path:
    if env := os.environ.get("PREVIEW_BROKER_TESTBIN"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "preview-broker" / "testbin"


def log(msg: str) -> None:
    print(f"testbin: {msg}", file=sys.stderr, flush=True)
