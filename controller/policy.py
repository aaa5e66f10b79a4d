"""Pure lifecycle policy: from what the cluster looks like now to what it should look like.

No I/O here.  `standing()` says whether a preview namespace is still live
(TTL counted from its last activity, its pull request's close); `plan()` takes
that, a snapshot of the namespace and the objects around it, plus the clock,
and returns the desired PreviewEnvironment status, the objects that must
exist, the events to announce and whether the namespace must go.  The
reconciler applies the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller import wiring
from controller.addons import PROVISIONED
from controller.lifetime import Lifetime, PullRequest, closed, deletion_due, lifetime
from controller.settings import ControllerSettings
from controller.times import Event, format_time  # noqa: F401 (Event: part of the policy's vocabulary)
from controller.views import NamespaceView, RouteView  # noqa: F401 (RouteView: what candidate_hosts reads)
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
    """(the auth wiring to generate in this namespace: a mode of wiring.WIRINGS or off; why a request was
    not followed)."""
    wanted = ns.annotations.get(contract.ANN_AUTH_WIRING, "").strip().lower()
    if not wanted:
        return settings.auth_wiring, ""
    if wanted == "off" or wanted in settings.wiring_modes:
        return wanted, ""
    if wanted in wiring.MODES:
        return "off", f"{contract.ANN_AUTH_WIRING}={wanted} is not allowed here (AUTH_WIRING_MODES)"
    return "off", f"{contract.ANN_AUTH_WIRING}={wanted!r} is not one of {', '.join(wiring.MODES)}, off"


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


# --- the plan ----------------------------------------------------------------------------

def plan(
    ns: NamespaceView,
    *,
    hosts: list[str],
    refused: list[dict[str, str]],
    current: Mapping[str, Any] | None,
    observed: Mapping[str, Mapping[str, Any] | None],
    settings: ControllerSettings,
    now: datetime,
    standing: Standing,
) -> Plan:
    """Desired status, objects and events for one preview namespace at `now`.

    `hosts` are the valid hosts this namespace won; `refused` those it may not have.
    `current` is the PreviewEnvironment's current status (None when absent); `observed` maps
    each add-on's name to its object in the namespace (controller/addons/), absent or None when none.
    """
    current = current or {}
    expires_at = standing.life.expires_at
    # An add-on that is off has no watch and no rights (DATABASE_DEFAULT and BUCKET_DEFAULT need it on):
    # a namespace whose annotation asks for it is told so, once.
    asked = [a for a in PROVISIONED if a.wanted(ns, settings)]
    off = [(a.annotation, a.name) for a in asked if not a.enabled(settings)]
    wanted = [a for a in asked if a.enabled(settings)]
    status: dict[str, Any] = {
        "allowedHosts": [],
        "refusedHosts": refused,
        **{a.name: "" for a in PROVISIONED},
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
        for addon in wanted:
            objects, warnings = addon.desired(ns, settings)
            if first:
                result.events += warnings
            result.objects += objects
            status[addon.name] = addon.ready_word if addon.ready(observed.get(addon.name)) else "Provisioning"
        pending = [a.name for a in PROVISIONED if status[a.name] == "Provisioning"]
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
            PHASE_PROVISIONING: "waiting for "
            + ", ".join(a.name for a in PROVISIONED if status[a.name] == "Provisioning"),
            PHASE_READY: "hosts: " + (", ".join(status["allowedHosts"]) or "none"),
            PHASE_FAILED: status["message"],
            PHASE_EXPIRED: status["message"],
            PHASE_CLOSED: f"{status['message']}; hosts revoked",
            PHASE_TERMINATING: "namespace is being deleted; hosts revoked",
        }[phase]
        events.append(Event(kind, phase, f"preview {ns.name} is {phase}: {detail}"))
    return events
