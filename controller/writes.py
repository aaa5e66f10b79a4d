"""The writes of a preview reconcile: PreviewEnvironment, status, add-on objects, wiring, events, deletes.

A mixin of the Controller (controller/reconciler.py): it uses its `kube`, `cache`,
`settings`, `clock` and `available_kinds`, and keeps what wiring was last sent
(`_wired`) and which warnings were said (`_warned`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from controller import kinds, policy, wiring
from controller.addons import BY_KIND as ADDONS_BY_KIND
from foundation import contract
from kube.client import ApiError, slim

log = logging.getLogger("preview_broker.controller")

PE_PATH = kinds.PREVIEW.path()


def cached_preview(obj: dict[str, Any]) -> dict[str, Any]:
    """What the controller keeps of a PreviewEnvironment: its status (what the reconcile
    compares with, the gauges count and GitHub reporting reads) and a few identifying fields."""
    meta = obj.get("metadata") or {}
    return slim({
        "metadata": {k: meta[k] for k in ("name", "uid", "resourceVersion", "deletionTimestamp") if k in meta},
        "status": obj.get("status") or {},
    })


class Writes:
    """Every write a reconcile makes (each one call; all through the fenced client)."""

    _wired: dict[tuple[str, str, str], str]
    _warned: set[tuple[str, str, str]]

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
        addon = ADDONS_BY_KIND[obj["kind"]]
        seen = self.cache.observed[addon.name]
        ns = obj["metadata"]["namespace"]
        if ns in seen:
            # Its observed object exists, so do those made before it: no create (and 409) on every resync.
            return
        cache = seen if obj["kind"] == addon.observed.kind else None

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
        for obj in wiring.auth_wiring(ns.name, mode, hosts, self.settings):
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
