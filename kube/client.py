"""The Kubernetes API boundary: one small client on kubernetes-asyncio's ApiClient.

kubernetes-asyncio does the configuration (kubeconfig, in-cluster service
account, token refresh, TLS) and the transport; we ask for raw JSON
(`_preload_content=False`) because the controller and the broker handle tens of
thousands of small objects and the generated model classes would cost more than
the objects themselves.  Transport and HTTP failures are translated here into
the small error hierarchy below, so callers never see aiohttp or ApiException.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException


class KubeError(Exception):
    """Base of everything the API boundary raises."""


class Unavailable(KubeError):
    """The apiserver could not be reached or timed out (retry with backoff)."""


class ApiError(KubeError):
    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message[:300]}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


class NoConfig(KubeError):
    """Neither in-cluster credentials nor a kubeconfig were found."""


class NotLeader(KubeError):
    """A write refused before it was sent: this replica does not hold the Lease (any more)."""


# Checked before every write of a fenced client: returns the seconds this replica may still act,
# or raises NotLeader.  See kube/leader.py.
Fence = Callable[[], float]


MERGE_PATCH = "application/merge-patch+json"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """A compact copy of an object for a cache: without the bookkeeping nobody here reads
    (metadata.managedFields, kubectl's last-applied copy), and with its keys interned, so
    10,000 cached objects share one "allowedHosts" instead of holding 10,000 copies of it."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        if LAST_APPLIED in (meta.get("annotations") or {}):
            meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
        obj = {**obj, "metadata": meta}
    return _interned(obj)


def _interned(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    return value


class Kube:
    def __init__(self, api: k8s.ApiClient, *, fence: Fence | None = None) -> None:
        self.api = api
        self.fence = fence

    @classmethod
    async def connect(cls, user_agent: str = "") -> Kube:
        """In-cluster service account when present, else $KUBECONFIG / ~/.kube/config."""
        configuration = k8s.Configuration()
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                await k8s_config.load_kube_config(client_configuration=configuration)
        except (ConfigException, OSError, TypeError) as exc:
            raise NoConfig(f"no Kubernetes credentials: set KUBECONFIG or run in a pod ({exc})") from None
        api = k8s.ApiClient(configuration)
        if user_agent:
            api.user_agent = user_agent  # names the replica in the apiserver's audit log
        return cls(api)

    def fenced(self, fence: Fence) -> Kube:
        """The same connection, but every write first asks `fence` whether this replica may still write."""
        return Kube(self.api, fence=fence)

    @classmethod
    async def from_kubeconfig(cls, path: str) -> Kube:
        configuration = k8s.Configuration()
        await k8s_config.load_kube_config(config_file=path, client_configuration=configuration)
        return cls(k8s.ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = 30.0,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the open response (2xx only); the caller reads and releases it."""
        if self.fence is not None and method != "GET":
            # Raises NotLeader once the lease may have passed to another replica.  A write that is
            # let through must also land before then, so it may not wait longer than that.
            left = self.fence()
            timeout = left if timeout is None or isinstance(timeout, aiohttp.ClientTimeout) else min(timeout, left)
        try:
            resp = await self.api.call_api(
                path,
                method,
                query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,  # serialized by the client (JSON content types)
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            raise ApiError(exc.status or 0, exc.reason or "", str(exc.body or "")) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Unavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status < 300:
            try:
                text = await resp.text()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                text = ""
            finally:
                resp.release()
            message = text
            try:
                message = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                pass
            raise ApiError(resp.status, resp.reason or "", message)
        return resp

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = await self.open(method, path, **kwargs)
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Unavailable(f"{method} {path}: {exc}") from None
        finally:
            resp.release()
        return json.loads(raw) if raw else {}

    async def get(self, path: str, **query: Any) -> dict[str, Any]:
        return await self.request("GET", path, query=query)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, body=body)

    async def delete(self, path: str) -> dict[str, Any]:
        return await self.request("DELETE", path)
