"""The controller loop: watches feed caches, a queue feeds reconciles, reconciles apply plans.

Level-triggered: a reconcile reads only the caches (the current state), asks
policy.plan() for the desired state, and applies the difference.  Running it
twice, or after a restart, changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller import kinds, policy, resources
from controller.applications import Applications
from controller.lifetime import PullRequest
from controller.metrics import ControllerMetrics
from controller.settings import ControllerSettings
from foundation import contract
from kube.client import ApiError, Kube, KubeError, NotLeader, slim
from kube.queue import WorkQueue
from kube.watch import Watcher

log = logging.getLogger("preview_broker.controller")

PE_PATH = kinds.PREVIEW.path()
MANAGED_SELECTOR = f"{contract.LABEL_MANAGED}={contract.MANAGER}"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def cached_preview(obj: dict[str, Any]) -> dict[str, Any]:
    """What the controller keeps of a PreviewEnvironment: its status (what the reconcile
    compares with, the gauges count and GitHub reporting reads) and a few identifying fields."""
    meta = obj.get("metadata") or {}
    return slim({
        "metadata": {k: meta[k] for k in ("name", "uid", "resourceVersion", "deletionTimestamp") if k in meta},
        "status": obj.get("status") or {},
    })


class Cache:
    def __init__(self) -> None:
        self.namespaces: dict[str, policy.NamespaceView] = {}
        # namespace -> (kind, name) -> the hosts an Ingress or HTTPRoute routes
        self.routes: dict[str, dict[tuple[str, str], policy.RouteView]] = {}
        self.previews: dict[str, dict[str, Any]] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.buckets: dict[str, dict[str, Any]] = {}
        # What GitHub last said about each preview's pull request (filled by PullRequestChecker).
        self.pull_requests: dict[str, PullRequest] = {}


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks of the queue: run this key again after `requeue_after` seconds."""

    requeue_after: float | None = None


def _ns_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace", "")


def _name_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


class Controller:
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
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or ControllerMetrics()
        self.workers = workers
        self.cache = Cache()
        self.metrics.count_previews(lambda: self.cache.previews.values())
        self.claims = policy.ClaimIndex()
        self.queue = WorkQueue()
        self.domains = tuple(settings.preview_domains)
        self.reserved = settings.reserved  # the broker's own host and RESERVED_HOSTS: never a preview's
        self.applications = Applications(settings.argocd_namespace, lambda: self.cache.namespaces.values(),
                                         self.queue.add)
        self.watchers: list[Watcher] = []
        self.available_kinds: set[str] = set()
        self._wired: dict[tuple[str, str, str], str] = {}  # auth wiring as last sent, so unchanged is not resent
        self._warned: set[tuple[str, str, str]] = set()
        # Side jobs with their own queues (GitHub statuses, bucket emptying): told after every
        # reconcile, never awaited by it, so a slow GitHub or S3 never delays the allowlist.
        self.extensions = list(extensions or [])
        self.freeze_after_first_pass = freeze_after_first_pass

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

    def _keyed_sync(self, store: dict[str, dict[str, Any]], key: Callable[[dict[str, Any]], str]):
        def sync(items: list[dict[str, Any]]) -> None:
            fresh = {key(o): o for o in items}
            touched = set(fresh) | set(store)
            store.clear()
            store.update(fresh)
            for k in touched:
                self.queue.add(k, bulk=True)

        def on_event(event: str, obj: dict[str, Any]) -> None:
            k = key(obj)
            if event == "DELETED":
                store.pop(k, None)
            else:
                store[k] = obj
            self.queue.add(k)

        return sync, on_event

    def _watchers(self) -> list[Watcher]:
        restart = self.metrics.watch_restarts

        def w(path: str, name: str, sync, event, selector: str | None = None, transform=slim) -> Watcher:
            return Watcher(
                self.kube, path, name=name, on_sync=sync, on_event=event, label_selector=selector,
                on_restart=lambda reason, n=name: restart.labels(n, reason).inc(), transform=transform,
            )

        pe_sync, pe_event = self._keyed_sync(self.cache.previews, _name_of)  # items are cached_preview()s
        cl_sync, cl_event = self._keyed_sync(self.cache.clusters, _ns_of)
        bk_sync, bk_event = self._keyed_sync(self.cache.buckets, _ns_of)
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
        # CloudNativePG and ACK are optional: watch their objects only when their add-on is on (the chart
        # grants their rights only then) and only where their CRDs are served.
        if kinds.CLUSTER.kind in self.available_kinds and self.settings.database_enabled:
            out.append(w(kinds.CLUSTER.path(), "cnpg-clusters", cl_sync, cl_event, MANAGED_SELECTOR))
        if kinds.BUCKET.kind in self.available_kinds and self.settings.bucket_enabled:
            out.append(w(kinds.BUCKET.path(), "ack-buckets", bk_sync, bk_event, MANAGED_SELECTOR))
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

    # --- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        await self._discover()
        self.watchers = self._watchers()
        tasks = [asyncio.create_task(w.run(), name=f"watch-{w.name}") for w in self.watchers]
        try:
            await asyncio.gather(*(w.synced.wait() for w in self.watchers))
            log.info("caches_synced", extra={"namespaces": len(self.cache.namespaces)})
            tasks += [asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(self.workers)]
            if self.freeze_after_first_pass:
                tasks.append(asyncio.create_task(self._freeze_after_first_pass(), name="freeze"))
            tasks.append(asyncio.create_task(self._resync(), name="resync"))
            tasks.append(asyncio.create_task(self._sample_queue(), name="queue-gauges"))
            tasks += [asyncio.create_task(self._supervise(ext), name=type(ext).__name__) for ext in self.extensions]
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _freeze_after_first_pass(self) -> None:
        """Once the first pass is done, exempt what the caches hold from cyclic garbage collection.

        With 10,000 previews the caches are a few hundred thousand objects that live as long
        as the process; every full collection scanned them all (tens of milliseconds with the
        event loop stopped).  Frozen objects are still freed by reference counting when
        replaced.  Process-wide, so only the controller's own entry point asks for it.
        """
        while not self.queue.idle():
            await asyncio.sleep(0.5)
        gc.collect()
        gc.freeze()
        log.info("caches_frozen", extra={"objects": gc.get_freeze_count()})
        await asyncio.Event().wait()  # keep the task alive, like its siblings

    async def _supervise(self, ext: Any) -> None:
        """Keep a side job running; its failure must not stop the allowlist."""
        while True:
            try:
                await ext.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("extension_failed", extra={"extension": type(ext).__name__})
                await asyncio.sleep(10)

    @property
    def synced(self) -> bool:
        return bool(self.watchers) and all(w.synced.is_set() for w in self.watchers)

    async def _sample_queue(self) -> None:
        while True:
            self.metrics.queue_depth.set(len(self.queue))
            self.metrics.queue_oldest.set(self.queue.oldest_wait())
            self.metrics.queue_delayed.set(self.queue.delayed())
            await asyncio.sleep(1.0)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_period)
            for name in set(self.cache.namespaces) | set(self.cache.previews):
                self.queue.add(name, bulk=True)

    async def _worker(self) -> None:
        while True:
            name = await self.queue.get()
            started = time.perf_counter()
            try:
                result = await self.reconcile(name)
            except NotLeader as exc:
                # The lease is gone or going; main stops everything. Not an error of this key.
                log.info("reconcile_stopped", extra={"namespace": name, "why": str(exc)})
            except KubeError as exc:
                self.metrics.reconcile_errors.inc()
                delay = self.queue.retry(name)
                log.warning("reconcile_failed", extra={"namespace": name, "error": str(exc)[:300],
                                                       "attempt": self.queue.failures(name), "retry_in": delay})
            except Exception:  # a bad object must never take the controller down
                self.metrics.reconcile_errors.inc()
                delay = self.queue.retry(name)
                log.exception("reconcile_crashed", extra={"namespace": name, "retry_in": delay})
            else:
                self.queue.forget(name)
                if result.requeue_after is not None:
                    # A hair late rather than early: at the exact instant the old state still holds.
                    self.queue.add_after(name, result.requeue_after + 0.05)
            finally:
                self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
                self.queue.done(name)
                for ext in self.extensions:
                    ext.notify(name)

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
            cluster=self.cache.clusters.get(name),
            bucket=self.cache.buckets.get(name),
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
    async def _create_preview(self, ns: policy.NamespaceView) -> dict[str, Any]:
        body = {
            "apiVersion": kinds.PREVIEW.api_version,
            "kind": kinds.PREVIEW.kind,
            "metadata": {
                "name": ns.name,
                "labels": {contract.LABEL_MANAGED: contract.MANAGER},
                # Garbage-collected with its namespace even if the controller is down.
                "ownerReferences": [{"apiVersion": kinds.NAMESPACE.api_version, "kind": kinds.NAMESPACE.kind,
                                     "name": ns.name, "uid": ns.uid}],
            },
            "spec": {"namespace": ns.name, "pullRequest": ns.pull_request},
        }
        try:
            created = await self.kube.create(PE_PATH, body)
        except ApiError as exc:
            if not exc.conflict:
                raise
            created = await self.kube.get(f"{PE_PATH}/{ns.name}")
        self.cache.previews[ns.name] = created = cached_preview(created)
        return created

    async def _apply_status(self, name: str, current: dict[str, Any], desired: dict[str, Any]) -> None:
        comparable = {k: v for k, v in desired.items() if v is not None}
        if all(current.get(k) == v for k, v in comparable.items()) and all(
            k in comparable or current.get(k) is None for k in desired
        ):
            return
        updated = await self.kube.merge_patch(f"{PE_PATH}/{name}/status", {"status": desired})
        self.cache.previews[name] = cached_preview(updated)
        log.info(
            "preview_status",
            extra={"namespace": name, "phase": desired.get("phase"), "hosts": desired.get("allowedHosts")},
        )

    async def _ensure(self, obj: dict[str, Any]) -> None:
        """Create the object when missing; existing ones are left as they are (users may tune them)."""
        cache = {"Cluster": self.cache.clusters, "Bucket": self.cache.buckets}.get(obj["kind"])
        ns = obj["metadata"]["namespace"]
        if cache is not None and ns in cache:
            return
        if obj["kind"] == "ObjectStore" and ns in self.cache.clusters:
            return  # made before its Cluster, which exists: no create (and 409) on every resync

        try:
            created = await self.kube.create(kinds.collection_path(obj), obj)
        except ApiError as exc:
            if exc.conflict:
                return
            raise
        if cache is not None:
            cache[ns] = slim(created)
        log.info("object_created", extra={"namespace": ns, "kind": obj["kind"], "object": obj["metadata"]["name"]})

    async def _wire(self, ns: policy.NamespaceView, mode: str, hosts: list[str], preview: dict[str, Any]) -> None:
        """Create or update the preview's auth wiring; each object is owned by its PreviewEnvironment,
        so it goes with the preview.  Unchanged objects are not sent again."""
        if not self.settings.broker_internal_url:
            await self._warn_once(ns, "AuthWiringUnavailable",
                                  f"{contract.ANN_AUTH_WIRING}={mode} needs the controller's BROKER_INTERNAL_URL")
            return
        owner = {"apiVersion": kinds.PREVIEW.api_version, "kind": kinds.PREVIEW.kind, "name": ns.name,
                 "uid": (preview.get("metadata") or {}).get("uid", ""), "controller": True}
        for obj in resources.auth_wiring(ns.name, mode, hosts, self.settings):
            if obj["kind"] not in self.available_kinds and kinds.BY_KIND[obj["kind"]].optional:
                await self._warn_once(ns, "MissingAPI", f"cannot create {obj['kind']}: its CRD is not installed")
                continue
            obj["metadata"]["ownerReferences"] = [owner]
            key = (ns.name, obj["kind"], obj["metadata"]["name"])
            digest = json.dumps(obj, sort_keys=True)
            if self._wired.get(key) == digest:
                continue
            path = kinds.collection_path(obj)
            try:
                await self.kube.create(path, obj)
                log.info("object_created", extra={"namespace": ns.name, "kind": obj["kind"],
                                                  "object": obj["metadata"]["name"]})
            except ApiError as exc:
                if not exc.conflict:
                    raise
                # Ours already: bring it back to what it should be (hosts change; hands may edit it).
                await self.kube.merge_patch(f"{path}/{obj['metadata']['name']}",
                                            {"metadata": {"labels": obj["metadata"]["labels"],
                                                          "ownerReferences": [owner]},
                                             "spec": obj["spec"]})
            self._wired[key] = digest

    async def _warn_once(self, ns: policy.NamespaceView, reason: str, message: str) -> None:
        key = (ns.name, reason, message)
        if key not in self._warned:
            self._warned.add(key)
            await self._event(ns, policy.Event("Warning", reason, message))

    async def _event(self, ns: policy.NamespaceView, event: policy.Event) -> None:
        stamp = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": kinds.EVENT.api_version,
            "kind": kinds.EVENT.kind,
            "metadata": {"generateName": f"{ns.name}.", "namespace": ns.name},
            # involvedObject.namespace = the namespace itself, so the event lives in (and is listed with)
            # the preview namespace: `kubectl get events -n pr-123` shows what happened to it.
            "involvedObject": {"apiVersion": kinds.NAMESPACE.api_version, "kind": kinds.NAMESPACE.kind,
                               "name": ns.name, "namespace": ns.name, "uid": ns.uid},
            "reason": event.reason,
            "message": event.message[:1000],
            "type": event.type,
            "source": {"component": contract.MANAGER},
            "reportingComponent": contract.MANAGER,
            "reportingInstance": self.settings.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.kube.create(kinds.EVENT.path(ns.name), body)
        except ApiError as exc:  # a terminating namespace refuses new objects; the event is best effort
            log.info("event_not_recorded",
                     extra={"namespace": ns.name, "reason": event.reason, "error": f"{exc.status} {exc.message[:200]}"})
        log.log(logging.WARNING if event.type == "Warning" else logging.INFO, "event",
                extra={"namespace": ns.name, "reason": event.reason, "detail": event.message})

    async def _delete_namespace(self, name: str, why: str) -> None:
        try:
            await self.kube.delete(f"{kinds.NAMESPACE.path()}/{name}")
            log.info("namespace_deleted", extra={"namespace": name, "why": why})
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def _delete_preview(self, name: str) -> None:
        try:
            await self.kube.delete(f"{PE_PATH}/{name}")
        except ApiError as exc:
            if not exc.not_found:
                raise
        self.cache.previews.pop(name, None)
