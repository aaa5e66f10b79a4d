"""A one-node Kubernetes cluster on this machine, for the tests that run the chart's pods for real.

The control plane of tests/support/controlplane.py (in its `for_nodes` mode) plus a real node:
containerd with runc, the kubelet registered to that apiserver, kube-scheduler, kube-proxy
(nftables mode) and pod networking through the bridge, host-local, loopback and portmap CNI
plugins. Every binary comes from scripts/testbin; no image comes from a registry: the sandbox
("pause") image is Kubernetes's own pause.c in an image made here with buildah, and images are
loaded into containerd from archives (`Node.load_image`).

Everything stays on this machine. The node's address is the gateway of its pod bridge
(NODE_IP, a local address no packet leaves the host for); the apiserver, Dex and anything
else pods must reach listen there. Pods may send only to pods or to the node (an nftables
guard drops whatever they would forward elsewhere), Services' virtual addresses are routed
onto the bridge, and pods get no DNS server.

Only one node runs on a machine at a time (an flock): kube-proxy's tables, the bridge and the
cgroup root are per machine. `teardown()` undoes everything (processes, mounts, network
devices, nftables tables, cgroups, /var/log/containers links, ip_forward) whatever state a
run left, and a new run first tears down what a killed one left behind.

Needs root, cgroups (v1 or v2), overlayfs, br_netfilter, nft and ip; says what is missing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support.controlplane import (
    SERVICE_CIDR,
    ControlPlane,
    cleanup,
    start_control_plane,
)
from tests.support.dex import Dex
from tests.support.procs import Proc, free_port, wait_until
from tests.support.testbin import ROOT, binary, testbin_dir
from tests.support.tls import Certs

NODE_NAME = "preview-broker-node"
BRIDGE = "pbnode0"
POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's own address: the pods' gateway and the node's InternalIP
CGROUP_ROOT = "preview-broker-node"  # under every cgroup hierarchy: the kubelet's --cgroup-root
GUARD_TABLE = "preview_broker_node"  # nftables (inet) table: pods never forward off the node
KUBE_PROXY_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"))
PAUSE_IMAGE = "localhost/preview-broker/pause:node"
CNI_NETWORK = "preview-broker-node"
CONTAINER_LOGS = Path("/var/log/containers")  # where the kubelet links container logs (fixed path)
# Paths made whatever the node is told (the kubelet's container-log links and device-plugin socket,
# the shims' sockets, buildah's CNI lock while it makes the pause image); removed again when this run
# made them.
HOST_PATHS = (CONTAINER_LOGS, Path("/var/lib/kubelet"), Path("/run/containerd"), Path("/etc/cni"))
_STATE = Path(tempfile.gettempdir()) / "preview-broker-node"  # lock and the running node's workdir


class NodeUnavailable(RuntimeError):
    """This machine cannot run the node; the message says what is missing and how to get it."""


def requirements() -> list[str]:
    """What this machine lacks for a node (empty when nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the kubelet, containerd and pod networking need it)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (Debian: apt-get install {'iproute2' if tool == 'ip' else 'nftables'}; "
                           "`make system-deps` installs it as root)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        missing.append("overlayfs in the kernel (modprobe overlay)")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        missing.append("br_netfilter in the kernel (modprobe br_netfilter)")
    if not Path("/sys/fs/cgroup").is_dir():
        missing.append("cgroups mounted at /sys/fs/cgroup")
    return missing


def sh(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


# --- cgroups -------------------------------------------------------------------------------------


def cgroup_roots() -> list[Path]:
    """Our cgroup root in every mounted hierarchy (v1 controllers, named ones, the unified one)."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        mountpoint = Path(fields[4])
        if fstype in ("cgroup", "cgroup2") and str(mountpoint).startswith("/sys/fs/cgroup"):
            roots.append(mountpoint / CGROUP_ROOT)
    return roots


def _make_cgroup_roots() -> None:
    for root in cgroup_roots():
        root.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            # A new v1 cpuset starts with no CPUs and no memory nodes: give it its parent's.
            if (root / name).exists() and not (root / name).read_text().strip():
                (root / name).write_text((root.parent / name).read_text())


def _cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for root in cgroup_roots():
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                try:
                    pids |= {int(x) for x in procs.read_text().split()}
                except OSError:
                    pass
    return pids


def _remove_cgroups() -> list[str]:
    left = []
    for root in cgroup_roots():
        if not root.is_dir():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [root]:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # a process still leaving it
                    time.sleep(0.1)
            else:
                left.append(str(d))
    return left


# --- processes, mounts ---------------------------------------------------------------------------


def _pids_mentioning(text: str) -> set[int]:
    """Processes whose command line names `text` (our containerd's address: its shims)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if text in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.add(int(d.name))
            except OSError:
                pass
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in pids):
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == prefix[:-1]:
            points.append(point)
    return points


def _unmount_under(path: Path) -> list[str]:
    for _ in range(5):
        points = _mounts_under(path)
        if not points:
            return []
        for point in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    return _mounts_under(path)


# --- network -------------------------------------------------------------------------------------


def _sysctl(name: str, value: str | None = None) -> str:
    path = Path("/proc/sys") / name.replace(".", "/")
    if value is not None:
        path.write_text(value)
    return path.read_text().strip()


def _setup_network() -> None:
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # Service addresses kube-proxy has not (yet) translated go onto the bridge, never out the default route.
    sh("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE)
    sh("nft", "-f", "-", input=f"""
table inet {GUARD_TABLE} {{
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        ip saddr {POD_CIDR} ip daddr != {POD_CIDR} drop
    }}
}}
""")


def _teardown_network() -> None:
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        sh("ip", "link", "delete", BRIDGE, check=False)
    for family, table in ((("inet", GUARD_TABLE),) + KUBE_PROXY_TABLES):
        sh("nft", "delete", "table", family, table, check=False)


# --- the node ------------------------------------------------------------------------------------


def _containerd_config(work: Path, bindir: Path) -> str:
    c = work / "containerd"
    return f"""version = 3
root = "{c / 'root'}"
state = "{c / 'state'}"
temp = "{c / 'tmp'}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{c / 'containerd.sock'}"
[ttrpc]
  address = "{c / 'containerd.sock.ttrpc'}"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (as on this class of machine) no process may lower its OOM score,
  # the sandbox's -998 included: never below containerd's own.
  restrict_oom_score_adj = true
  enable_cdi = false
  cdi_spec_dirs = []
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{bindir / 'runc'}"
        Root = "{work / 'runc'}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{bindir / 'cni'}"]
    conf_dir = "{work / 'cni' / 'net.d'}"
    max_conf_num = 1
"""


def _cni_config(work: Path) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(work / "cni" / "ipam"),
                      "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _kubelet_config(work: Path, sock: Path, port: int, healthz: int) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{sock}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        # Kubernetes >= 1.35 refuses cgroup v1 hosts (this one is v1, "hybrid") unless told.
        "failCgroupV1": False,
        "failSwapOn": False,
        "resolvConf": str(work / "resolv.conf"),
        "volumePluginDir": str(work / "volume-plugins"),
        "podLogsDir": str(work / "pod-logs"),
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "localStorageCapacityIsolation": True,
    }


def _kube_proxy_config(kubeconfig: Path, healthz: int, metrics: int) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "nftables",
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "nodePortAddresses": [f"{NODE_IP}/32"],  # never on the machine's real interfaces
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        # Leave the machine's conntrack settings as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
                      "udpTimeout": "0s", "udpStreamTimeout": "0s"},
    }


@dataclass
class Node:
    workdir: Path
    bindir: Path
    cp: ControlPlane
    procs: dict[str, Proc] = field(default_factory=dict)
    _lock: object = None
    _ip_forward: str = "0"
    _made: tuple[str, ...] = ()

    @property
    def sock(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(str(self.bindir / "ctr"), "--address", str(self.sock), "--namespace", "k8s.io", *args, check=check)

    def load_image(self, archive: Path) -> None:
        """Import a docker-archive or oci-archive into the node's containerd (no registry involved)."""
        self.ctr("images", "import", "--snapshotter", "overlayfs", str(archive))

    def images(self) -> list[str]:
        return self.ctr("images", "list", "--quiet").stdout.split()

    def container_pid(self, namespace: str, pod: str, container: str) -> int:
        """The host PID of a running container's first process (for what the kernel enforces on it)."""
        running = dict(line.split()[:2] for line in self.ctr("tasks", "list").stdout.splitlines()[1:])
        for cid, pid in running.items():
            labels = json.loads(self.ctr("containers", "info", cid).stdout).get("Labels") or {}
            if (labels.get("io.kubernetes.pod.namespace"), labels.get("io.kubernetes.pod.name"),
                    labels.get("io.kubernetes.container.name")) == (namespace, pod, container):
                return int(pid)
        raise LookupError(f"no running container {container} of {namespace}/{pod}")

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(binary("helm")), *args, "--kubeconfig", str(self.cp.kubeconfig)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def pods(self, namespace: str, selector: str = "") -> list[dict]:
        with self.cp.client() as c:
            r = c.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector} if selector else None)
            r.raise_for_status()
            return r.json()["items"]

    def events(self, namespace: str) -> str:
        with self.cp.client() as c:
            items = c.get(f"/api/v1/namespaces/{namespace}/events").json().get("items", [])
        return "\n".join(f"{e.get('involvedObject', {}).get('name')}: {e['reason']}: {e.get('message', '')[:300]}"
                         for e in items[-30:])

    def pod_logs(self, namespace: str, prefix: str = "", lines: int = 40) -> str:
        """The containers' own logs as the kubelet wrote them (pods named `prefix`*), last `lines` each."""
        out = []
        for d in sorted((self.workdir / "pod-logs").glob(f"{namespace}_{prefix}*")):
            for f in sorted(d.rglob("*.log")):
                out.append(f"----- {f.relative_to(self.workdir / 'pod-logs')} -----\n"
                           + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def logs(self) -> str:
        parts = [self.cp.logs()]
        parts += [f"----- {name} (last lines) -----\n{p.tail(40)}" for name, p in self.procs.items()]
        return "\n".join(parts)

    def stop(self) -> None:
        try:
            teardown(self.workdir, self.procs, self.bindir, self._made)
        finally:
            cleanup(self.cp)
            _sysctl("net.ipv4.ip_forward", self._ip_forward)  # the bridge plugin turns it on
            _release(self._lock)


def teardown(workdir: Path, procs: dict[str, Proc] | None = None, bindir: Path | None = None,
             made: tuple[str, ...] = ()) -> None:
    """Stop the node and undo every trace of it; safe on any partial state, and idempotent.

    `made`: the HOST_PATHS this run created (removed with what they hold).
    """
    procs = procs or {}
    problems = []
    for name in ("kube-scheduler", "kubelet", "kube-proxy"):
        if name in procs:
            procs[name].stop()
    sock = workdir / "containerd" / "containerd.sock"
    if "containerd" in procs and procs["containerd"].alive() and bindir is not None:
        # The containers die first; then containerd deletes its tasks, so every shim exits and removes
        # its own socket (outside the workdir).
        _kill(_cgroup_pids())
        ctr = [str(bindir / "ctr"), "--address", str(sock), "--namespace", "k8s.io"]
        try:
            for _ in range(20):
                tasks = subprocess.run([*ctr, "tasks", "list", "--quiet"], capture_output=True, text=True,
                                       timeout=30).stdout.split()
                if not tasks:
                    break
                subprocess.run([*ctr, "tasks", "delete", "--force", *tasks], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            problems.append("containerd did not answer; its shims were killed instead")
        procs["containerd"].stop()
    for p in procs.values():
        p.stop()
    # Whatever is left: container processes (in our cgroups), and every process naming the workdir:
    # the shims (our containerd's address), and all components of a run that was killed itself.
    _kill(_cgroup_pids() | _pids_mentioning(str(workdir)))
    if left := _unmount_under(workdir):
        problems.append(f"still mounted: {left}")
    _teardown_network()
    if left := _remove_cgroups():
        problems.append(f"cgroups left: {left}")
    if CONTAINER_LOGS.is_dir():
        for link in CONTAINER_LOGS.iterdir():
            if link.is_symlink() and str(os.readlink(link)).startswith(str(workdir)):
                link.unlink()
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
    if problems:
        raise RuntimeError("node teardown incomplete: " + "; ".join(problems))


def _acquire() -> object:
    _STATE.mkdir(exist_ok=True)
    lock = (_STATE / "lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("node: another test run holds the machine's node; waiting for it", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _release(lock: object) -> None:
    if lock is not None:
        (_STATE / "running.json").unlink(missing_ok=True)
        lock.close()  # type: ignore[attr-defined]


def _wait_node_ready(cp: ControlPlane, kubelet: Proc, timeout: float = 120) -> None:
    def ready() -> bool:
        with cp.client() as c:
            r = c.get(f"/api/v1/nodes/{NODE_NAME}")
            if r.status_code != 200:
                return False
            conds = {x["type"]: x["status"] for x in r.json()["status"].get("conditions") or []}
            return conds.get("Ready") == "True"

    wait_until(ready, f"node {NODE_NAME} Ready", timeout, kubelet)


def start_cluster(workdir: Path, extra_cas: tuple[Path, ...] = ()) -> Node:
    """Control plane + one node, pods schedulable; `Node.stop()` tears all of it down."""
    if missing := requirements():
        raise NodeUnavailable("this machine cannot run the test node, missing: " + "; ".join(missing))
    bindir = testbin_dir("kube-node", "containerd", "runc", "cni-plugins")
    workdir.mkdir(parents=True, exist_ok=True)
    lock = _acquire()
    running = _STATE / "running.json"
    if running.exists():  # a run that was killed: undo what it left
        left = json.loads(running.read_text())
        _sysctl("net.ipv4.ip_forward", left["ip_forward"])
        teardown(Path(left["workdir"]), made=tuple(left["made"]))
    ip_forward = _sysctl("net.ipv4.ip_forward")
    made = tuple(str(p) for p in HOST_PATHS if not p.exists())
    try:
        running.write_text(json.dumps({"workdir": str(workdir), "ip_forward": ip_forward, "made": made}))
        _setup_network()
        _make_cgroup_roots()
        cp = start_control_plane(workdir / "controlplane", address=NODE_IP, for_nodes=True, extra_cas=extra_cas)
    except BaseException:
        try:
            teardown(workdir, made=made)
        finally:
            _sysctl("net.ipv4.ip_forward", ip_forward)
            _release(lock)
        raise
    node = Node(workdir, bindir, cp, _lock=lock, _ip_forward=ip_forward, _made=made)
    try:
        _start_node(node)
    except BaseException:
        node.stop()
        raise
    return node


def _start_node(node: Node) -> None:
    work, bindir, cp = node.workdir, node.bindir, node.cp
    path_env = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    (work / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (work / "cni" / "net.d" / "10-preview-broker.conflist").write_text(json.dumps(_cni_config(work), indent=1))
    (work / "resolv.conf").write_text("# pods of the test node get no DNS server\nnameserver 127.0.0.1\n")
    (work / "containerd").mkdir(exist_ok=True)
    (work / "containerd.toml").write_text(_containerd_config(work, bindir))
    node.procs["containerd"] = Proc("containerd", [str(bindir / "containerd"), "--config",
                                                   str(work / "containerd.toml"), "--log-level", "warn"],
                                    work / "containerd.log", env=path_env).start()
    wait_until(lambda: node.ctr("version", check=False).returncode == 0, "containerd", 30, node.procs["containerd"])
    node.load_image(build_pause_image(work, bindir))

    kubelet_dir = work / "kubelet"
    kubelet_dir.mkdir(exist_ok=True)
    (work / "kubelet.yaml").write_text(yaml.safe_dump(_kubelet_config(work, node.sock, free_port(), free_port())))
    node.procs["kubelet"] = Proc("kubelet", [
        str(bindir / "kubelet"),
        f"--config={work / 'kubelet.yaml'}",
        f"--kubeconfig={cp.kubeconfig}",
        f"--root-dir={kubelet_dir}",
        f"--cert-dir={work / 'kubelet-pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        "--v=1",
    ], work / "kubelet.log", env=path_env).start()
    scheduler_port = free_port()
    node.procs["kube-scheduler"] = Proc("kube-scheduler", [
        str(bindir / "kube-scheduler"),
        f"--kubeconfig={cp.kubeconfig}",
        f"--authentication-kubeconfig={cp.kubeconfig}",
        f"--authorization-kubeconfig={cp.kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={scheduler_port}",
        "--v=1",
    ], work / "kube-scheduler.log").start()
    (work / "kube-proxy.yaml").write_text(yaml.safe_dump(_kube_proxy_config(cp.kubeconfig, free_port(), free_port())))
    node.procs["kube-proxy"] = Proc("kube-proxy", [str(bindir / "kube-proxy"), f"--config={work / 'kube-proxy.yaml'}",
                                                   "--v=1"], work / "kube-proxy.log", env=path_env).start()
    wait_until(lambda: httpx.get(f"https://127.0.0.1:{scheduler_port}/healthz", verify=False, timeout=2).status_code
               == 200, "kube-scheduler /healthz", 60, node.procs["kube-scheduler"])
    _wait_node_ready(cp, node.procs["kubelet"])


# --- images --------------------------------------------------------------------------------------


def _buildah(storage: Path, *args: str) -> str:
    s = ["--root", str(storage / "storage"), "--runroot", str(storage / "run"), "--storage-driver", "vfs"]
    return sh("buildah", *s, *args).stdout.strip()


def build_pause_image(work: Path, bindir: Path) -> Path:
    """The sandbox image: Kubernetes's pause program alone, as a docker-archive (buildah, no registry)."""
    if shutil.which("buildah") is None:
        raise NodeUnavailable("buildah is missing (Debian: apt-get install buildah; `make system-deps` as root)")
    storage = work / "pause-buildah"
    ctr = _buildah(storage, "from", "--quiet", "scratch")
    _buildah(storage, "copy", "--chmod", "0755", ctr, str(bindir / "pause"), "/pause")
    _buildah(storage, "config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr)
    _buildah(storage, "commit", "--quiet", ctr, PAUSE_IMAGE)
    archive = work / "pause.tar"
    _buildah(storage, "push", "--quiet", PAUSE_IMAGE, f"docker-archive:{archive}:{PAUSE_IMAGE}")
    shutil.rmtree(storage, ignore_errors=True)
    return archive


def export_image(image: str, storage_args: list[str], archive: Path) -> Path:
    """An image of scripts/build-image's buildah storage as a docker-archive containerd imports."""
    archive.unlink(missing_ok=True)
    sh("buildah", *storage_args, "push", "--quiet", image, f"docker-archive:{archive}:{image}")
    return archive


def build_project_image(prebuilt: str | None = None) -> tuple[str, list[str]]:
    """Build the project's image with scripts/build-image; (its name, the buildah storage arguments).

    `prebuilt`: an image already in that storage, used as it is (it must be there).
    """
    import importlib.machinery
    import importlib.util
    import sys

    loader = importlib.machinery.SourceFileLoader("build_image", str(ROOT / "scripts" / "build-image"))
    spec = importlib.util.spec_from_loader("build_image", loader)
    assert spec is not None
    bi = importlib.util.module_from_spec(spec)
    loader.exec_module(bi)
    if missing := bi.missing_tools():
        raise NodeUnavailable(f"cannot build the image here, missing: {', '.join(missing)} "
                              "(Debian: apt-get install buildah debootstrap; `make test` installs them as root)")
    if prebuilt:
        if subprocess.run(["buildah", *bi.storage_args(), "inspect", prebuilt], capture_output=True).returncode:
            raise NodeUnavailable(f"{prebuilt} is not in scripts/build-image's storage; build it or unset the name")
        return prebuilt, bi.storage_args()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-image")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/build-image failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1], bi.storage_args()


# --- the chart on the node (tests/node) ----------------------------------------------------------

CHART = ROOT / "helm" / "preview-broker"
NODE_VALUES = CHART / "ci" / "node-values.yaml"
NAMESPACE = "preview-broker"
RELEASE = "pb"
BROKER = f"{RELEASE}-preview-broker-broker"
CONTROLLER = f"{RELEASE}-preview-broker-controller"


@dataclass(frozen=True)
class Release:
    """The chart installed on the node, with the Dex its brokers use and the run's certificates."""

    node: Node
    dex: Dex
    certs: Certs
    image: str
    public_port: int  # of the broker's public URL (Traefik's https entry point in front of it)

    def service_ip(self, name: str) -> str:
        with self.node.cp.client() as c:
            return c.get(f"/api/v1/namespaces/{NAMESPACE}/services/{name}").json()["spec"]["clusterIP"]

    def pods(self, component: str) -> list[dict]:
        return self.node.pods(NAMESPACE, f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}")
