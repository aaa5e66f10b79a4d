"""Pure lifecycle policy: from what the cluster looks like now to what it should look like.

No I/O here.  `plan()` takes a snapshot of one preview namespace (and the
objects around it) plus the clock, and returns the desired PreviewEnvironment
status, the objects that must exist, the events to announce and whether the
namespace must go.  The reconciler applies the difference.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.hosts import InvalidHost, is_under, normalize_host
from controller import names, resources
from controller.settings import ControllerSettings, parse_duration

PHASE_PROVISIONING = "Provisioning"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
PHASE_EXPIRED = "Expired"
PHASE_TERMINATING = "Terminating"
NOT_LIVE = frozenset({PHASE_EXPIRED, PHASE_TERMINATING})


def _ours(mapping: Mapping[str, str] | None) -> dict[str, str]:
    # Interned: 10,000 cached namespaces share one copy of each key.
    return {sys.intern(k): v for k, v in (mapping or {}).items() if k.startswith(names.PREFIX)}


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
        return self.labels.get(names.LABEL_PR) or self.annotations.get(names.ANN_PR, "")


@dataclass(frozen=True, slots=True)
class IngressView:
    name: str
    hosts: tuple[str, ...]
    exposed: bool

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> IngressView:
        meta = obj.get("metadata", {})
        rules = (obj.get("spec") or {}).get("rules") or []
        hosts = tuple(r["host"] for r in rules if isinstance(r, dict) and isinstance(r.get("host"), str))
        exposed = (meta.get("annotations") or {}).get(names.ANN_EXPOSE, "").lower() == "true"
        return cls(meta["name"], hosts, exposed)


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(slots=True)
class Plan:
    status: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete_namespace: bool = False
    requeue_after: float | None = None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- hosts ---------------------------------------------------------------------------

def candidate_hosts(ns: NamespaceView, ingresses: Iterable[IngressView], mode: str) -> list[tuple[str, str]]:
    """(raw host, where it came from) for every host the namespace claims."""
    out: list[tuple[str, str]] = []
    if ns.annotations.get(names.ANN_HOST):
        out.append((ns.annotations[names.ANN_HOST].strip(), "annotation"))
    for ing in sorted(ingresses, key=lambda i: i.name):
        if mode == "all" or ing.exposed:
            out += [(h, f"ingress/{ing.name}") for h in ing.hosts]
    return out


def validate_hosts(
    candidates: Iterable[tuple[str, str]], domains: tuple[str, ...]
) -> tuple[list[str], list[dict[str, str]]]:
    """Hosts under PREVIEW_DOMAINS (normalized, deduplicated) and the refused ones with reasons."""
    valid: list[str] = []
    refused: list[dict[str, str]] = []
    for raw, source in candidates:
        try:
            host = normalize_host(raw)
        except InvalidHost:
            refused.append({"host": raw[:253], "reason": f"not a valid host name ({source})"})
            continue
        if not is_under(host, domains):
            refused.append({"host": host, "reason": f"not under PREVIEW_DOMAINS ({source})"})
        elif host not in valid:
            valid.append(host)
    return valid, refused


class ClaimIndex:
    """Who claims which host; the oldest live namespace wins a contested host.

    Kept incrementally (update one namespace at a time) so that a 10,000-namespace
    cluster does not recompute every claim on every event.
    """

    def __init__(self) -> None:
        self._claimants: dict[str, dict[str, tuple[datetime, str]]] = {}
        self._claims: dict[str, frozenset[str]] = {}

    def update(self, ns: str, created: datetime, hosts: Iterable[str]) -> set[str]:
        """Record `ns`'s claims; returns the other namespaces whose outcome may have changed."""
        new = frozenset(hosts)
        old = self._claims.get(ns, frozenset())
        touched: set[str] = set()
        for host in old - new:
            claimants = self._claimants.get(host, {})
            claimants.pop(ns, None)
            touched |= set(claimants)
            if not claimants:
                self._claimants.pop(host, None)
        for host in new:
            claimants = self._claimants.setdefault(host, {})
            if ns not in claimants:
                touched |= set(claimants)
            claimants[ns] = (created, ns)
        if new:
            self._claims[ns] = new
        else:
            self._claims.pop(ns, None)
        return touched

    def remove(self, ns: str) -> set[str]:
        return self.update(ns, datetime.fromtimestamp(0, UTC), ())

    def owner(self, host: str) -> str | None:
        claimants = self._claimants.get(host)
        if not claimants:
            return None
        return min(claimants.values())[1]


# --- expiry ----------------------------------------------------------------------------

def expiry(ns: NamespaceView, default_ttl: float | None) -> tuple[datetime | None, Event | None]:
    """When the preview expires (None: never), and a Warning for an unreadable annotation."""
    if ns.labels.get(names.LABEL_KEEP, "").lower() == "true":
        return None, None
    warning = None
    if names.ANN_EXPIRES_AT in ns.annotations:
        at = parse_time(ns.annotations[names.ANN_EXPIRES_AT])
        if at is not None:
            return at, None
        warning = Event("Warning", "InvalidExpiry", f"{names.ANN_EXPIRES_AT} is not RFC 3339; using the default TTL")
    elif names.ANN_TTL in ns.annotations:
        try:
            return ns.created + timedelta(seconds=parse_duration(ns.annotations[names.ANN_TTL])), None
        except ValueError:
            warning = Event("Warning", "InvalidTTL", f"{names.ANN_TTL} is not a duration like 72h; using the default")
    if default_ttl is None:
        return None, warning
    return ns.created + timedelta(seconds=default_ttl), warning


# --- readiness of the objects we create -------------------------------------------------

def _conditions(obj: Mapping[str, Any] | None) -> dict[str, str]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c.get("status", "") for c in conds if isinstance(c, dict)}


def database_ready(cluster: Mapping[str, Any] | None) -> bool:
    """CloudNativePG: healthy phase AND the Ready condition (either alone can lag the other)."""
    if not cluster:
        return False
    phase = ((cluster.get("status") or {}).get("phase")) or ""
    return phase == "Cluster in healthy state" and _conditions(cluster).get("Ready") == "True"


def bucket_ready(bucket: Mapping[str, Any] | None) -> bool:
    conds = _conditions(bucket)
    return conds.get("ACK.ResourceSynced") == "True" or conds.get("Ready") == "True"


def _wanted(ns: NamespaceView, annotation: str, default: bool) -> bool:
    value = ns.annotations.get(annotation, "").lower()
    if value in ("true", "false"):
        return value == "true"
    return default


# --- the plan ----------------------------------------------------------------------------

def plan(
    ns: NamespaceView,
    *,
    hosts: list[str],
    refused: list[dict[str, str]],
    current: Mapping[str, Any] | None,
    cluster: Mapping[str, Any] | None,
    bucket: Mapping[str, Any] | None,
    settings: ControllerSettings,
    now: datetime,
) -> Plan:
    """Desired status, objects and events for one preview namespace at `now`.

    `hosts` are the valid hosts this namespace won; `refused` those it may not have.
    `current` is the PreviewEnvironment's current status (None when absent).
    """
    current = current or {}
    expires_at, ttl_warning = expiry(ns, settings.default_ttl_seconds)
    want_db = _wanted(ns, names.ANN_DATABASE, settings.database_default)
    want_bucket = _wanted(ns, names.ANN_BUCKET, settings.bucket_default)
    status: dict[str, Any] = {
        "allowedHosts": [],
        "refusedHosts": refused,
        "database": "",
        "bucket": "",
        "expiresAt": format_time(expires_at) if expires_at else None,
        "message": "",
    }
    result = Plan(status)
    if ttl_warning and current.get("phase") is None:
        result.events.append(ttl_warning)

    if ns.deleting:
        status["phase"] = PHASE_TERMINATING
    elif expires_at is not None and now >= expires_at:
        status["phase"] = PHASE_EXPIRED
        status["message"] = f"expired at {format_time(expires_at)}"
        result.delete_namespace = settings.expiry_action == "delete"
    else:
        status["allowedHosts"] = hosts
        if want_db:
            result.objects += resources.database_objects(ns.name, settings)
            status["database"] = "Ready" if database_ready(cluster) else "Provisioning"
        if want_bucket:
            retain = ns.annotations.get(names.ANN_RETAIN_BUCKET, "").lower() == "true"
            result.objects.append(resources.bucket(ns.name, ns.uid, settings, retain=retain))
            status["bucket"] = "Synced" if bucket_ready(bucket) else "Provisioning"
        pending = [k for k in ("database", "bucket") if status[k] == "Provisioning"]
        deadline = ns.created + timedelta(seconds=settings.provisioning_timeout_seconds)
        if not pending:
            status["phase"] = PHASE_READY
        elif now >= deadline:
            status["phase"] = PHASE_FAILED
            status["message"] = f"{' and '.join(pending)} not ready after {settings.provisioning_timeout}"
        else:
            status["phase"] = PHASE_PROVISIONING
            result.requeue_after = (deadline - now).total_seconds()
        if expires_at is not None:
            until = (expires_at - now).total_seconds()
            result.requeue_after = min(result.requeue_after or until, until)

    result.events += _transition_events(current, status, ns)
    return result


def _transition_events(current: Mapping[str, Any], status: Mapping[str, Any], ns: NamespaceView) -> list[Event]:
    """Events only on change, so a restarted controller (same status) announces nothing new."""
    events: list[Event] = []
    old_refused = {(r.get("host"), r.get("reason")) for r in current.get("refusedHosts") or []}
    for r in status["refusedHosts"]:
        if (r["host"], r["reason"]) not in old_refused:
            events.append(Event("Warning", "HostRefused", f"host {r['host']} refused: {r['reason']}"))
    phase = status["phase"]
    if current.get("phase") != phase:
        kind = "Warning" if phase in (PHASE_FAILED, PHASE_EXPIRED) else "Normal"
        detail = {
            PHASE_PROVISIONING: "waiting for " + ", ".join(k for k in ("database", "bucket") if status[k] == "Provisioning"),
            PHASE_READY: "hosts: " + (", ".join(status["allowedHosts"]) or "none"),
            PHASE_FAILED: status["message"],
            PHASE_EXPIRED: status["message"],
            PHASE_TERMINATING: "namespace is being deleted; hosts revoked",
        }[phase]
        events.append(Event(kind, phase, f"preview {ns.name} is {phase}: {detail}"))
    return events
