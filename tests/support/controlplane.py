"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Built from Go modules by scripts/testbin (envtest-style), started on free ports,
with RBAC, an admin token and service-account signing keys so TokenRequest
works.  The namespace, garbage-collector and serviceaccount controllers run, so
namespaces really terminate and owned objects really get collected.

`for_nodes=True` (tests/support/node.py) makes it a control plane pods can run against: the
apiserver listens on the node's address (pods cannot reach loopback) and publishes it as the
`kubernetes` Service's endpoint, the ServiceAccount admission plugin mounts tokens, and the
controllers that turn Deployments into pods and Services into endpoints run too.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.procs import Proc, free_port, wait_until
from tests.support.testbin import binary, testbin_dir

KCM_CONTROLLERS = "namespace-controller,garbage-collector-controller,serviceaccount-controller"
# With a node: Deployments become pods, Services get EndpointSlices, pods get kube-root-ca.crt,
# and a Ready node loses the not-ready taint it registers with.
NODE_KCM_CONTROLLERS = ("deployment-controller,replicaset-controller,endpointslice-controller,"
                        "root-ca-certificate-publisher-controller,disruption-controller,node-lifecycle-controller")
SERVICE_CIDR = "10.0.0.0/24"


@dataclass
class ControlPlane:
    workdir: Path
    etcd_url: str
    api_url: str
    admin_token: str
    ca_file: Path
    kubeconfig: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def client(self, token: str | None = None) -> httpx.Client:
        """A plain HTTP client for the apiserver (tests that check raw API behaviour)."""
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout=30,
        )

    def logs(self) -> str:
        return "\n".join(f"----- {name} (last lines) -----\n{p.tail(40)}" for name, p in self.procs.items())

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self.procs:
                self.procs[name].stop()

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        """Stop the apiserver (watches break), optionally wait, start it again on the same port."""
        api = self.procs["kube-apiserver"]
        api.stop()
        time.sleep(down_for)
        api.start()
        self._wait_ready(api)

    def _wait_ready(self, api: Proc) -> None:
        def ready() -> bool:
            with self.client() as c:
                return c.get("/readyz").status_code == 200

        wait_until(ready, "kube-apiserver /readyz", 90, api)

    def write_kubeconfig(self, path: Path, token: str, user: str = "admin") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path


def _write_sa_keys(d: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = d / "sa.key", d / "sa.pub"
    priv.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return priv, pub


def start_control_plane(workdir: Path | None = None, *, address: str = "127.0.0.1", for_nodes: bool = False,
                        extra_cas: tuple[Path, ...] = ()) -> ControlPlane:
    """`address`: where the apiserver listens; `extra_cas`: also published to pods as kube-root-ca.crt."""
    bindir = testbin_dir("etcd", "kube")  # builds when missing; fails with the reason otherwise
    work = workdir or Path(tempfile.mkdtemp(prefix="preview-broker-cp-"))
    work.mkdir(parents=True, exist_ok=True)
    etcd_port, peer_port, api_port, kcm_port = free_port(), free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    procs: dict[str, Proc] = {}

    etcd = Proc(
        "etcd",
        [
            str(bindir / "etcd"),
            "--name=default",
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        work / "etcd.log",
    ).start()
    procs["etcd"] = etcd
    wait_until(lambda: httpx.get(f"{etcd_url}/health", timeout=2).status_code == 200, "etcd /health", 30, etcd)

    token = secrets.token_urlsafe(24)
    (work / "tokens.csv").write_text(f'{token},admin,admin-uid,"system:masters"\n')
    sa_key, sa_pub = _write_sa_keys(work)
    certs = work / "certs"
    api = Proc(
        "kube-apiserver",
        [
            str(binary("kube-apiserver", "kube")),
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={certs}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={api_port}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Loopback may not be an endpoint: without nodes, no `kubernetes` endpoints at all.
            f"--endpoint-reconciler-type={'lease' if for_nodes else 'none'}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={work / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            *([] if for_nodes else ["--disable-admission-plugins=ServiceAccount"]),
            "--allow-privileged=false",
            "--watch-cache=true",
            "--v=1",
        ],
        work / "kube-apiserver.log",
    ).start()
    procs["kube-apiserver"] = api
    ca_file = certs / "apiserver.crt"
    wait_until(ca_file.exists, "apiserver serving certificate", 60, api)
    cp = ControlPlane(work, etcd_url, f"https://{address}:{api_port}", token, ca_file, work / "kubeconfig", procs)
    cp._wait_ready(api)
    cp.write_kubeconfig(cp.kubeconfig, token)
    root_ca = ca_file
    if extra_cas:
        root_ca = work / "root-ca.crt"
        root_ca.write_bytes(b"".join(f.read_bytes() for f in (ca_file, *extra_cas)))

    kcm = Proc(
        "kube-controller-manager",
        [
            str(binary("kube-controller-manager", "kube")),
            f"--kubeconfig={cp.kubeconfig}",
            f"--authentication-kubeconfig={cp.kubeconfig}",
            f"--authorization-kubeconfig={cp.kubeconfig}",
            f"--controllers={KCM_CONTROLLERS}" + (f",{NODE_KCM_CONTROLLERS}" if for_nodes else ""),
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={root_ca}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            "--concurrent-namespace-syncs=10",
            "--concurrent-gc-syncs=10",
            "--v=1",
        ],
        work / "kube-controller-manager.log",
    ).start()
    procs["kube-controller-manager"] = kcm
    wait_until(
        lambda: httpx.get(f"https://127.0.0.1:{kcm_port}/healthz", verify=False, timeout=2).status_code == 200,
        "kube-controller-manager /healthz",
        60,
        kcm,
    )
    return cp


def install_crds(cp: ControlPlane, *, gateway_api_channel: str = "experimental") -> list[str]:
    """Apply the real CNPG, Barman Cloud, ACK S3, Gateway API and Traefik CRDs and our own; wait until
    Established. The experimental Gateway API channel is a superset; "standard" is what most clusters run."""
    crd_dir = testbin_dir("crds") / "crds"
    own = Path(__file__).resolve().parents[2] / "helm" / "preview-broker" / "crds"
    files = sorted(crd_dir.glob("*.yaml"))
    if gateway_api_channel == "standard":
        files = [f for f in files if not f.name.startswith("gateway.networking.k8s.io_")]
        files += sorted((crd_dir / "gateway-api-standard").glob("*.yaml"))
    elif gateway_api_channel != "experimental":
        raise ValueError(f"gateway_api_channel: {gateway_api_channel!r} is neither standard nor experimental")
    names = []
    with cp.client() as c:
        for f in files + sorted(own.glob("*.yaml")):
            for doc in yaml.safe_load_all(f.read_text()):
                if not doc:
                    continue
                r = c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=doc)
                if r.status_code not in (201, 409):
                    raise RuntimeError(f"installing {f.name}: {r.status_code} {r.text[:500]}")
                names.append(doc["metadata"]["name"])

        def established() -> bool:
            for name in names:
                crd = c.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json()
                # Right after creation the apiserver may report "conditions": null.
                conds = {x["type"]: x["status"] for x in (crd.get("status") or {}).get("conditions") or []}
                if conds.get("Established") != "True":
                    return False
            return True

        wait_until(established, "CRDs Established", 60)
    return names


def cleanup(cp: ControlPlane) -> None:
    cp.stop()
    shutil.rmtree(cp.workdir, ignore_errors=True)
