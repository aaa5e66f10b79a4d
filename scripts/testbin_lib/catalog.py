"""Every tool and CRD source by name, in build order, and the same with --pin applied.

The rest of the package reads TOOLS and CRD_SOURCES through this module at call time, so a test
can swap them (monkeypatch catalog.TOOLS).
"""

from __future__ import annotations

from dataclasses import replace

from . import checkers, controlplane, crds, identity, node
from .core import CrdSource, Tool

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        controlplane.ETCD,
        controlplane.KUBE,
        identity.DEX,
        checkers.HELM,
        identity.OAUTH2_PROXY,
        node.KUBE_NODE,
        node.CONTAINERD,
        node.RUNC,
        node.CNI_PLUGINS,
        checkers.PROMTOOL,
        checkers.ACTIONLINT,
    )
}
CRD_SOURCES: tuple[CrdSource, ...] = crds.CRD_SOURCES


def tools(pins: dict[str, str]) -> dict[str, Tool]:
    return {name: replace(tool, version=pins.get(name, tool.version)) for name, tool in TOOLS.items()}


def crd_sources(pins: dict[str, str]) -> tuple[CrdSource, ...]:
    return tuple(replace(s, version=pins.get(s.module, s.version)) for s in CRD_SOURCES)
