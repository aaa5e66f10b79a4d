"""The container image, built for real without a Docker engine (debootstrap + buildah), then run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.support.locks import RUNTIME_LOCK, read_lock

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.image
sys.path.insert(0, str(ROOT / "scripts"))


def _build_image_module():
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("build_image", str(ROOT / "scripts" / "build-image"))
    spec = importlib.util.spec_from_loader("build_image", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bi = _build_image_module()
MAX_VENV_MB = 120  # measured after trimming, with room for a dependency's growth; before: 170


def test_hadolint_clean_at_error_level() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, "--failure-threshold", "error", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def image() -> str:
    if missing := bi.missing_tools():
        pytest.fail(f"cannot build the image here, missing: {', '.join(missing)} "
                    "(Debian: apt-get install buildah debootstrap; `make test` installs them as root)")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-image")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def container(image: str):
    """One working container for every check (vfs copies the whole image per container)."""
    s = bi.storage_args()
    ctr = subprocess.run(["buildah", *s, "from", "--quiet", image], capture_output=True, text=True, check=True).stdout.strip()
    yield ctr
    subprocess.run(["buildah", *s, "rm", ctr], capture_output=True)


def _run(ctr: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", *bi.storage_args(), "run", "--isolation", "chroot", ctr, "--", *args],
                          capture_output=True, text=True)


def test_image_runs_both_commands_help(container: str) -> None:
    top = _run(container, "preview-broker", "--help")
    assert top.returncode == 0 and "{broker,controller,check-config}" in top.stdout
    for command in ("broker", "controller"):
        proc = _run(container, "preview-broker", command, "--help")
        assert proc.returncode == 0 and "PREVIEW_BROKER_PREVIEW_DOMAINS" in proc.stdout


def test_image_start_up_error_is_one_line(container: str) -> None:
    proc = _run(container, "preview-broker", "broker")
    assert proc.returncode == 2
    assert "preview-broker: PREVIEW_BROKER_PUBLIC_URL: is required but not set" in proc.stderr


def test_image_runs_as_numeric_non_root_without_source_tree(image: str, container: str) -> None:
    s = bi.storage_args()
    config = subprocess.run(
        ["buildah", *s, "inspect", "--format", "{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.Cmd}}", image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert config == "10001:10001|[preview-broker]|[broker]"
    assert _run(container, "id", "-u").stdout.strip() == "10001"
    assert _run(container, "test", "-e", "/src").returncode != 0
    assert _run(container, "sh", "-c", "ls /opt/preview-broker/lib/python3*/site-packages/broker/app.py").returncode == 0
    assert _run(container, "test", "-e", "/opt/preview-broker/bin/pip").returncode != 0


def test_image_says_its_version_and_carries_its_license(container: str) -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(container, "preview-broker", "--version").stdout == f"preview-broker {version}\n"
    assert "Apache License" in _run(container, "cat", "/opt/preview-broker/LICENSE").stdout


def test_the_trimmed_image_still_has_what_the_app_loads(container: str) -> None:
    """botocore keeps only the S3, STS and SSO models: the controller's S3 client and the credential
    chain (IRSA's web identity, SSO profiles) must still build; every module of both components imports."""
    script = (
        "import botocore.session, pkgutil, importlib\n"
        "s = botocore.session.get_session()\n"
        "for name in ('s3', 'sts', 'sso', 'sso-oidc'): s.create_client(name, region_name='eu-west-1')\n"
        "s.get_component('credential_provider')\n"
        "import broker, controller, kube, foundation, preview_broker\n"
        "for pkg in (broker, controller, kube, foundation, preview_broker):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    proc = _run(container, "python", "-c", script)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert _run(container, "sh", "-c", "ls /opt/preview-broker/lib/python3*/site-packages/botocore/data/ec2").returncode != 0


def test_the_app_s_part_of_the_image_stays_small(container: str) -> None:
    """The virtualenv (the part of the image this project controls) was 170 MB before trimming."""
    megabytes = int(_run(container, "du", "-sm", "/opt/preview-broker").stdout.split()[0])
    assert megabytes <= MAX_VENV_MB, f"/opt/preview-broker is {megabytes} MB"


def test_the_image_holds_exactly_the_runtime_lock_on_python_3_11(container: str) -> None:
    """The Dockerfile installs requirements.lock (hash-checked) and the project: nothing else, nothing resolved."""
    script = ("import importlib.metadata as m, json, platform\n"
              "print(json.dumps({'version': platform.python_version(), 'impl': platform.python_implementation(),"
              " 'dists': [[d.metadata['Name'], d.version] for d in m.distributions()]}))\n")
    proc = _run(container, "python", "-c", script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout)
    assert found["version"].startswith("3.11."), found["version"]
    env = {"python_version": "3.11", "python_full_version": found["version"],
           "platform_python_implementation": found["impl"], "implementation_name": found["impl"].lower()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {(canonicalize_name(name), version) for name, version in found["dists"]}
    locked = {(p.name, p.version) for p in read_lock(RUNTIME_LOCK) if p.applies(env)}
    assert installed == locked | {("preview-broker", project["version"])}
