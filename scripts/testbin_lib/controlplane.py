"""The tests' control plane: etcd, kube-apiserver and kube-controller-manager (or envtest's binaries
from $KUBEBUILDER_ASSETS)."""

from __future__ import annotations

import os
from pathlib import Path

from .core import Tool, log

KUBE_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
KUBE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


def kube_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    # Without a stamped version the apiserver reports v0.0.0-master and its
    # compatibility-version checks refuse to start.
    return " ".join(
        [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
            "-s -w",
        ]
    )


ETCD = Tool(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version=ETCD_VERSION,
    packages=(("go.etcd.io/etcd/server/v3", "etcd"),),
)
KUBE = Tool(
    name="kube",
    module="k8s.io/kubernetes",
    version=KUBE_VERSION,
    packages=(
        ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
        ("k8s.io/kubernetes/cmd/kube-controller-manager", "kube-controller-manager"),
    ),
    ldflags=kube_ldflags,
    local_replaces="staging",
)


def link_kubebuilder_assets(out: Path) -> bool:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return False
    src = Path(assets)
    if not all(os.access(src / b, os.X_OK) for b in KUBE_BINARIES):
        log(f"KUBEBUILDER_ASSETS={assets} lacks one of {', '.join(KUBE_BINARIES)}; building instead")
        return False
    for b in KUBE_BINARIES:
        dst = out / b
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        dst.symlink_to(src / b)
    log(f"using etcd, kube-apiserver, kube-controller-manager from KUBEBUILDER_ASSETS={assets}")
    return True
