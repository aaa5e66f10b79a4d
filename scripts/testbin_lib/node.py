"""The node of the tests' one-node cluster (tests/support/node.py): kubelet, kube-scheduler, kube-proxy
and pause; containerd with its runc shim and ctr; runc; the CNI plugins."""

from __future__ import annotations

from .controlplane import KUBE_VERSION, kube_ldflags
from .core import CProgram, Tool

CONTAINERD_VERSION = "v2.4.2"
RUNC_VERSION = "v1.5.3"
CNI_PLUGINS_VERSION = "v1.10.0"


def _containerd_ldflags(version: str) -> str:
    pkg = "github.com/containerd/containerd/v2/version"
    return f"-s -w -X {pkg}.Version={version} -X {pkg}.Package=github.com/containerd/containerd/v2"


def _runc_ldflags(version: str) -> str:
    return f"-s -w -X main.version={version.lstrip('v')}"


def _cni_ldflags(version: str) -> str:
    return f"-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion={version}"


def _pause_cflags(version: str) -> list[str]:
    # As build/pause/Makefile compiles it (a static binary, the only file of the sandbox image).
    return ["-Os", "-Wall", "-Werror", "-static", f"-DVERSION={version}"]


# A tool of its own, not more binaries of "kube": a cache built before keeps its apiserver, and a
# kubelet can be pinned to an older release than the apiserver (the supported skew) should one
# refuse this kernel.
KUBE_NODE = Tool(
    name="kube-node",
    module="k8s.io/kubernetes",
    version=KUBE_VERSION,
    packages=(
        ("k8s.io/kubernetes/cmd/kubelet", "kubelet"),
        ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
        ("k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"),
    ),
    ldflags=kube_ldflags,
    local_replaces="staging",
    c_programs=(CProgram("build/pause/linux/pause.c", "pause", _pause_cflags),),
)
CONTAINERD = Tool(
    name="containerd",
    module="github.com/containerd/containerd/v2",
    version=CONTAINERD_VERSION,
    packages=(
        ("github.com/containerd/containerd/v2/cmd/containerd", "containerd"),
        ("github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2", "containerd-shim-runc-v2"),
        ("github.com/containerd/containerd/v2/cmd/ctr", "ctr"),
    ),
    ldflags=_containerd_ldflags,
    tags="no_btrfs no_devmapper no_zfs",
)
RUNC = Tool(
    name="runc",
    module="github.com/opencontainers/runc",
    version=RUNC_VERSION,
    packages=(("github.com/opencontainers/runc", "runc"),),
    ldflags=_runc_ldflags,
    # RuntimeDefault seccomp (the chart's pods ask for it) needs runc built with libseccomp.
    tags="seccomp urfave_cli_no_docs",
    cgo=("libseccomp",),
)
CNI_PLUGINS = Tool(
    name="cni-plugins",
    module="github.com/containernetworking/plugins",
    version=CNI_PLUGINS_VERSION,
    packages=tuple(
        (f"github.com/containernetworking/plugins/plugins/{path}", f"cni/{path.rsplit('/', 1)[1]}")
        for path in ("main/bridge", "ipam/host-local", "main/loopback", "meta/portmap")
    ),
    ldflags=_cni_ldflags,
)
