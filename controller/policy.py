"""Pure lifecycle policy: from what the cluster looks like now to what it should look like.

No I/O here.  `standing()` says whether a preview namespace is still live
(TTL counted from its last activity, its pull request's close); `plan()` takes
that, a snapshot of the namespace and the objects around it, plus the clock,
and returns the desired PreviewEnvironment status, the objects that must
exist, the events to announce and whether the namespace must go.  The
reconciler applies the difference.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller import resources
from controller.lifetime import Lifetime, PullRequest, closed, deletion_due, lifetime
from controller.settings import ControllerSettings, parse_rfc3339
from controller.times import Event, format_time, parse_time  # noqa: F401 (Event: part of the policy's vocabulary)
from foundation import contract
from foundation.contract import (  # noqa: F401 (the phases belong to the contract; the policy speaks them)
    NOT_LIVE,
    PHASE_CLOSED,
    PHASE_EXPIRED,
    PHASE_FAILED,
    PHASE_PROVISIONING,
    PHASE_READY,
    PHASE_TERMINATING,
)
from foundation.durations import format_duration
from foundation.hosts import InvalidHost, is_under, normalize_host


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


@dataclass(slots=True)
class Plan:
    status: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete_namespace: bool = False
    requeue_after: float | None = None


# --- hosts ---------------------------------------------------------------------------

def candidate_hosts(ns: NamespaceView, routes: Iterable[RouteView], mode: str) -> list[tuple[str, str]]:
    """(raw host, where it came from) for every host the namespace claims: its annotation, and the
    hosts of its Ingresses and HTTPRoutes (all, or only those annotated to expose them).  A
    wildcard hostname is kept as written, so that validation refuses it with a reason."""
    out: list[tuple[str, str]] = []
    if ns.annotations.get(contract.ANN_HOST):
        out.append((ns.annotations[contract.ANN_HOST].strip(), "annotation"))
    for route in sorted(routes, key=lambda r: (r.kind, r.name)):
        if mode == "all" or route.exposed:
            out += [(h, f"{route.kind}/{route.name}") for h in route.hosts]
    return out


def auth_wiring(ns: NamespaceView, settings: ControllerSettings) -> tuple[str, str]:
    """(the auth wiring to generate in this namespace: traefik, nginx or off; why a request was not followed)."""
    wanted = ns.annotations.get(contract.ANN_AUTH_WIRING, "").strip().lower()
    if not wanted:
        return settings.auth_wiring, ""
    if wanted == "off" or wanted in settings.wiring_modes:
        return wanted, ""
    if wanted in ("traefik", "nginx"):
        return "off", f"{contract.ANN_AUTH_WIRING}={wanted} is not allowed here (AUTH_WIRING_MODES)"
    return "off", f"{contract.ANN_AUTH_WIRING}={wanted!r} is not one of traefik, nginx, off"


def reserved_by(host: str, reserved: Mapping[str, str]) -> str | None:
    """Why `host` may not be claimed: it is a reserved host or sits under one (None: it may)."""
    labels = host.split(".")
    for i in range(len(labels) - 1):  # the host itself, then each parent down to two labels
        why = reserved.get(".".join(labels[i:]))
        if why is not None:
            return why
    return None


def validate_hosts(
    candidates: Iterable[tuple[str, str]], domains: tuple[str, ...], reserved: Mapping[str, str] | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    """Hosts under PREVIEW_DOMAINS and not reserved (normalized, deduplicated), and the refused ones with reasons.

    `reserved` maps host -> why (the broker's own host, RESERVED_HOSTS): a preview claiming the
    broker's host would receive its logins' redirects and could set its cookies.
    """
    valid: list[str] = []
    refused: list[dict[str, str]] = []
    for raw, source in candidates:
        try:
            host = normalize_host(raw)
        except InvalidHost:
            refused.append({"host": raw[:253], "reason": f"not a valid host name ({source})"})
            continue
        why = reserved_by(host, reserved) if reserved else None
        if why is not None:
            refused.append({"host": host, "reason": f"{why} ({source})"})
        elif not is_under(host, domains):
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


# --- is it still live? ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Standing:
    life: Lifetime
    closed: dict[str, str] | None  # status.closed
    expired: bool

    @property
    def live(self) -> bool:
        return self.closed is None and not self.expired


def standing(
    ns: NamespaceView,
    *,
    current: Mapping[str, Any] | None,
    pr: PullRequest | None,
    application_gone: bool,
    settings: ControllerSettings,
    now: datetime,
) -> Standing:
    """TTL (from the last activity) and close of one preview at `now`; see controller/lifetime.py."""
    current = current or {}
    life = lifetime(created=ns.created, labels=ns.labels, annotations=ns.annotations,
                    recorded_activity=current.get("activity"), pr=pr,
                    default_ttl=settings.default_ttl, now=now)
    shut = closed(pr=pr, application=ns.annotations.get(contract.ANN_ARGOCD_APP, ""),
                  application_gone=application_gone, recorded=current.get("closed"), now=now)
    return Standing(life, shut, life.expires_at is not None and now >= life.expires_at)


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

def _database_target(ns: NamespaceView, settings: ControllerSettings) -> tuple[str, Event | None]:
    raw = ns.annotations.get(contract.ANN_DATABASE_TARGET_TIME, "")
    if raw:
        try:
            return format_time(parse_rfc3339(raw)), None
        except ValueError:
            return settings.database_recovery_target_time, Event(
                "Warning", "InvalidDatabaseTarget", f"{contract.ANN_DATABASE_TARGET_TIME} is not RFC 3339; ignored")
    return settings.database_recovery_target_time, None


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
    standing: Standing,
) -> Plan:
    """Desired status, objects and events for one preview namespace at `now`.

    `hosts` are the valid hosts this namespace won; `refused` those it may not have.
    `current` is the PreviewEnvironment's current status (None when absent).
    """
    current = current or {}
    expires_at = standing.life.expires_at
    want_db = _wanted(ns, contract.ANN_DATABASE, settings.database_default)
    want_bucket = _wanted(ns, contract.ANN_BUCKET, settings.bucket_default)
    # An add-on that is off has no watch and no rights (DATABASE_DEFAULT and BUCKET_DEFAULT need it on):
    # a namespace whose annotation asks for it is told so, once.
    off = []
    if want_db and not settings.database_enabled:
        off.append((contract.ANN_DATABASE, "database"))
    if want_bucket and not settings.bucket_enabled:
        off.append((contract.ANN_BUCKET, "bucket"))
    want_db = want_db and settings.database_enabled
    want_bucket = want_bucket and settings.bucket_enabled
    status: dict[str, Any] = {
        "allowedHosts": [],
        "refusedHosts": refused,
        "database": "",
        "bucket": "",
        "expiresAt": format_time(expires_at) if expires_at else None,
        "activity": standing.life.activity,
        "closed": standing.closed,
        "dryRun": None,
        "message": "",
    }
    result = Plan(status)
    first = current.get("phase") is None
    if standing.life.warning and first:
        result.events.append(standing.life.warning)
    for ann, name in off if first else ():
        result.events.append(Event("Warning", "AddonDisabled",
                                   f"{ann}=true ignored: the {name} add-on is off ({name.upper()}_ENABLED)"))
    delete_why = ""

    def requeue_at(when: datetime) -> None:
        until = max(0.0, (when - now).total_seconds())
        result.requeue_after = until if result.requeue_after is None else min(result.requeue_after, until)

    if ns.deleting:
        status["phase"] = PHASE_TERMINATING
    elif standing.closed is not None:
        status["phase"] = PHASE_CLOSED
        status["message"] = standing.closed["reason"]
        # Only a configured close detection deletes: a close recorded under an earlier configuration
        # keeps its hosts revoked, but without GitHub or Argo CD the chart grants no namespace delete.
        if settings.closed_action == "delete" and settings.detects_closes:
            due = deletion_due(standing.closed, settings.closed_grace, now)
            if now >= due:
                delete_why = standing.closed["reason"]
            else:
                requeue_at(due)
    elif standing.expired and expires_at is not None:
        status["phase"] = PHASE_EXPIRED
        status["message"] = f"expired at {format_time(expires_at)}"
        if settings.expiry_action == "delete":
            delete_why = status["message"]
    else:
        status["allowedHosts"] = hosts
        if want_db:
            target, warning = _database_target(ns, settings)
            if warning and first:
                result.events.append(warning)
            result.objects += resources.database_objects(ns.name, settings, target_time=target)
            status["database"] = "Ready" if database_ready(cluster) else "Provisioning"
        if want_bucket:
            retain = ns.annotations.get(contract.ANN_RETAIN_BUCKET, "").lower() == "true"
            result.objects.append(resources.bucket(ns.name, ns.uid, settings, retain=retain))
            status["bucket"] = "Synced" if bucket_ready(bucket) else "Provisioning"
        pending = [k for k in ("database", "bucket") if status[k] == "Provisioning"]
        deadline = ns.created + timedelta(seconds=settings.provisioning_timeout)
        if not pending:
            status["phase"] = PHASE_READY
        elif now >= deadline:
            status["phase"] = PHASE_FAILED
            status["message"] = f"{' and '.join(pending)} not ready after {format_duration(settings.provisioning_timeout)}"
        else:
            status["phase"] = PHASE_PROVISIONING
            requeue_at(deadline)
        if expires_at is not None:
            requeue_at(expires_at)

    result.events += _transition_events(current, status, ns)
    if delete_why and settings.dry_run:
        # Said once (the status remembers it), not on every resync.
        status["dryRun"] = f"would delete namespace {ns.name}: {delete_why}"
        if current.get("dryRun") != status["dryRun"]:
            result.events.append(Event("Normal", "DryRun", status["dryRun"]))
    elif delete_why:
        result.delete_namespace = True
        result.events.append(Event("Normal", "Deleting", f"deleting namespace {ns.name}: {delete_why}"))
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
            PHASE_CLOSED: f"{status['message']}; hosts revoked",
            PHASE_TERMINATING: "namespace is being deleted; hosts revoked",
        }[phase]
        events.append(Event(kind, phase, f"preview {ns.name} is {phase}: {detail}"))
    return events
