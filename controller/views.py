"""What the controller keeps of the namespaces and routes it watches: the few fields policy reads."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.times import parse_time
from foundation import contract


def _ours(mapping: Mapping[str, str] | None) -> dict[str, str]:
    # Interned: 10,000 cached namespaces share one copy of each key.
    return {sys.intern(k): v for k, v in (mapping or {}).items() if k.startswith(contract.PREFIX)}


@dataclass(frozen=True, slots=True)
class NamespaceView:
    name: str
    uid: str
    created: datetime
    deleting: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NamespaceView:
        meta = obj.get("metadata", {})
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            created=parse_time(meta.get("creationTimestamp")) or datetime.fromtimestamp(0, UTC),
            deleting=bool(meta.get("deletionTimestamp")),
            # Only our own keys: policy reads nothing else, and other tools' annotations
            # (Argo CD, kubectl) would be most of what 10,000 cached namespaces weigh.
            labels=_ours(meta.get("labels")),
            annotations=_ours(meta.get("annotations")),
        )

    @property
    def pull_request(self) -> str:
        return self.labels.get(contract.LABEL_PR) or self.annotations.get(contract.ANN_PR, "")


@dataclass(frozen=True, slots=True)
class RouteView:
    """What the controller keeps of an Ingress or an HTTPRoute: the hosts it routes."""

    kind: str  # ingress | httproute
    name: str
    hosts: tuple[str, ...]
    exposed: bool

    @classmethod
    def from_ingress(cls, obj: Mapping[str, Any]) -> RouteView:
        rules = (obj.get("spec") or {}).get("rules") or []
        hosts = tuple(r["host"] for r in rules if isinstance(r, dict) and isinstance(r.get("host"), str))
        return cls._of("ingress", obj, hosts)

    @classmethod
    def from_httproute(cls, obj: Mapping[str, Any]) -> RouteView:
        names = (obj.get("spec") or {}).get("hostnames") or []
        return cls._of("httproute", obj, tuple(h for h in names if isinstance(h, str)))

    @classmethod
    def _of(cls, kind: str, obj: Mapping[str, Any], hosts: tuple[str, ...]) -> RouteView:
        meta = obj.get("metadata", {})
        exposed = (meta.get("annotations") or {}).get(contract.ANN_EXPOSE, "").lower() == "true"
        return cls(kind, meta["name"], hosts, exposed)
