"""Reconciling one preview: what it means, from the caches to a plan to the writes.

Level-triggered: a reconcile reads only the caches (the current state), asks
policy.plan() for the desired state, and applies the difference.  Running it
twice, or after a restart, changes nothing.  The generic loop (watches, queue,
workers) is controller/loop.py; the writes are controller/writes.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller import kinds, policy
from controller.addons import PROVISIONED
from controller.applications import Applications
from controller.lifetime import PullRequest
from controller.loop import Loop, Result
from controller.metrics import ControllerMetrics
from controller.settings import ControllerSettings
from controller.writes import PE_PATH, Writes, cached_preview  # noqa: F401 (PE_PATH: the rig reads it here)
from foundation import contract
from kube.client import ApiError, Kube
from kube.watch import Watcher

log = logging.getLogger("preview_broker.controller")

MANAGED_SELECTOR = f"{contract.LABEL_MANAGED}={contract.MANAGER}"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Cache:
    def __init__(self) -> None:
        self.namespaces: dict[str, policy.NamespaceView] = {}
        # namespace -> (kind, name) -> the hosts an Ingress or HTTPRoute routes
        self.routes: dict[str, dict[tuple[str, str], policy.RouteView]] = {}
        self.previews: dict[str, dict[str, Any]] = {}
        # add-on name -> namespace -> the object that says whether it is ready (controller/addons/)
        self.observed: dict[str, dict[str, dict[str, Any]]] = {addon.name: {} for addon in PROVISIONED}
        # What GitHub last said about each preview's pull request (filled by PullRequestChecker).
        self.pull_requests: dict[str, PullRequest] = {}



def _ns_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace", "")


def _name_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


class Controller(Writes, Loop):
    def __init__(
        self,
        kube: Kube,
        settings: ControllerSettings,
        *,
        clock: Clock = utcnow,
        metrics: ControllerMetrics | None = None,
        workers: int = 4,
        extensions: list[Any] | None = None,
        freeze_after_first_pass: bool = False,
    ) -> None:
        super().__init__(kube, metrics=metrics or ControllerMetrics(), resync_period=settings.resync_period,
                         workers=workers, extensions=extensions, freeze_after_first_pass=freeze_after_first_pass)
        self.settings = settings
        self.clock = clock
        self.cache = Cache()
        self.metrics.count_previews(lambda: self.cache.previews.values())
        self.claims = policy.ClaimIndex()
        self.domains = tuple(settings.preview_domains)
        self.reserved = settings.reserved  # the broker's own host and RESERVED_HOSTS: never a preview's
        self.applications = Applications(settings.argocd_namespace, lambda: self.cache.namespaces.values(),
                                         self.queue.add)
        self.available_kinds: set[str] = set()
        self._wired: dict[tuple[str, str, str], str] = {}  # auth wiring as last sent, so unchanged is not resent
        self._warned: set[tuple[str, str, str]] = set()
    # --- watch handlers: update the cache, enqueue the namespaces affected -----------
    def _sync_namespaces(self, views: list[policy.NamespaceView]) -> None:
        fresh = {v.name: v for v in views}
        for gone in set(self.cache.namespaces) - set(fresh):
            self.queue.add(gone, bulk=True)
        self.cache.namespaces = fresh
        for name in fresh:
            self.queue.add(name, bulk=True)

    def _on_namespace(self, event: str, view: policy.NamespaceView) -> None:
        if event == "DELETED":
            self.cache.namespaces.pop(view.name, None)
        else:
            self.cache.namespaces[view.name] = view
        self.queue.add(view.name)

    def _route_handlers(self, kind: str):
        """The list and event handlers of one kind of route (Ingress or HTTPRoute) in the route cache."""
        def sync(items: list[tuple[str, policy.RouteView]]) -> None:
            touched = set()
            for ns, views in self.cache.routes.items():  # drop what the list no longer has, of this kind
                for key in [k for k in views if k[0] == kind]:
                    del views[key]
                    touched.add(ns)
            for ns, view in items:
                self.cache.routes.setdefault(ns, {})[(kind, view.name)] = view
                touched.add(ns)
            for ns in touched:
                if ns in self.cache.namespaces:
                    self.queue.add(ns, bulk=True)

        def on_event(event: str, item: tuple[str, policy.RouteView]) -> None:
            ns, view = item
            if event == "DELETED":
                self.cache.routes.get(ns, {}).pop((kind, view.name), None)
            else:
                self.cache.routes.setdefault(ns, {})[(kind, view.name)] = view
            if ns in self.cache.namespaces:
                self.queue.add(ns)

        return sync, on_event

    def _watchers(self) -> list[Watcher]:
        w = self.watcher
        pe_sync, pe_event = self.keyed_sync(self.cache.previews, _name_of)  # items are cached_preview()s
        out = [
            # Namespaces and routes are kept only as the few fields policy reads.
            w(kinds.NAMESPACE.path(), "namespaces", self._sync_namespaces, self._on_namespace,
              self.settings.namespace_selector, policy.NamespaceView.from_object),
            w(kinds.INGRESS.path(), "ingresses", *self._route_handlers("ingress"),
              transform=lambda o: (_ns_of(o), policy.RouteView.from_ingress(o))),
            w(PE_PATH, "previewenvironments", pe_sync, pe_event, transform=cached_preview),
        ]
        if kinds.HTTPROUTE.kind in self.available_kinds:  # Gateway API: only where its CRDs are served
            out.append(w(kinds.HTTPROUTE.path(), "httproutes", *self._route_handlers("httproute"),
                         transform=lambda o: (_ns_of(o), policy.RouteView.from_httproute(o))))
        # The add-ons (CloudNativePG, ACK) are optional: watch their objects only when the add-on is on (the
        # chart grants their rights only then) and only where their CRDs are served.
        for addon in PROVISIONED:
            if addon.observed.kind in self.available_kinds and addon.enabled(self.settings):
                out.append(w(addon.observed.path(), addon.watch_name,
                             *self.keyed_sync(self.cache.observed[addon.name], _ns_of), MANAGED_SELECTOR))
        if kinds.APPLICATION.kind in self.available_kinds and self.settings.argocd_namespace:
            # Only the names: Applications are large, and all that matters is which still exist.
            out.append(w(kinds.APPLICATION.path(self.settings.argocd_namespace),
                         "argocd-applications", self.applications.on_sync, self.applications.on_event,
                         transform=_name_of))
        return out

    async def _discover(self) -> None:
        self.available_kinds = set()
        for kind in kinds.OPTIONAL:
            try:
                doc = await self.kube.get(kind.group_path)
            except ApiError as exc:
                if exc.not_found:
                    continue
                raise
            if any(r.get("name") == kind.plural for r in doc.get("resources") or []):
                self.available_kinds.add(kind.kind)
        log.info("optional_apis", extra={"available": sorted(self.available_kinds)})


    def _synced_extra(self) -> dict[str, Any]:
        return {"namespaces": len(self.cache.namespaces)}

    def _resync_keys(self) -> set[str]:
        return set(self.cache.namespaces) | set(self.cache.previews)

    # --- one reconcile ------------------------------------------------------------------------
    async def reconcile(self, name: str) -> Result:
        ns = self.cache.namespaces.get(name)
        current = self.cache.previews.get(name)
        if ns is None:
            for key in [k for k in self._wired if k[0] == name]:
                del self._wired[key]
            for other in self.claims.remove(name):
                self.queue.add(other)
            if current is not None:
                await self._delete_preview(name)
            return Result()
        now = self.clock()
        current_status = (current or {}).get("status") or {}
        standing = policy.standing(ns, current=current_status, pr=self.cache.pull_requests.get(name),
                                   application_gone=self.applications.gone(ns), settings=self.settings, now=now)
        live = not ns.deleting and standing.live
        candidates = policy.candidate_hosts(ns, self.cache.routes.get(name, {}).values(), self.settings.ingress_hosts)
        valid, refused = policy.validate_hosts(candidates, self.domains, self.reserved)
        for other in self.claims.update(name, ns.created, valid if live else ()):
            self.queue.add(other)
        won = [h for h in valid if self.claims.owner(h) == name]
        refused += [
            {"host": h, "reason": f"already claimed by older namespace {self.claims.owner(h)}"}
            for h in valid
            if live and self.claims.owner(h) not in (name, None)
        ]
        plan = policy.plan(
            ns,
            hosts=won,
            refused=refused,
            current=current_status,
            observed={addon.name: self.cache.observed[addon.name].get(name) for addon in PROVISIONED},
            settings=self.settings,
            now=now,
            standing=standing,
        )
        if current is None:
            current = await self._create_preview(ns)
        # Order matters: the status (and so the allowlist) changes first, before any teardown.
        await self._apply_status(name, current_status, plan.status)
        for obj in plan.objects:
            if obj["kind"] not in self.available_kinds:
                await self._event(ns, policy.Event(
                    "Warning", "MissingAPI", f"cannot create {obj['kind']}: its CRD is not installed in the cluster"))
                continue
            await self._ensure(obj)
        mode, why_not = policy.auth_wiring(ns, self.settings)
        if why_not:
            await self._warn_once(ns, "AuthWiringRefused", why_not)
        if mode != "off" and not ns.deleting:
            await self._wire(ns, mode, won if live else [], current)
        for event in plan.events:
            await self._event(ns, event)
        if plan.delete_namespace:
            await self._delete_namespace(name, plan.status.get("message") or "")
        return Result(plan.requeue_after)

    async def announce(self, name: str, event: policy.Event) -> None:
        """Record an Event on a preview namespace for a side job (best effort)."""
        ns = self.cache.namespaces.get(name)
        if ns is not None:
            await self._event(ns, event)

    # --- writes ----------------------------------------------------------------------------------
