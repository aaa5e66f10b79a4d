"""scripts/testbin: prints its directory last, honours KUBEBUILDER_ASSETS, fails loudly and clearly."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import testbin as support_testbin

pytestmark = pytest.mark.cluster  # needs binaries built by scripts/testbin

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "testbin"


def _module():
    loader = importlib.machinery.SourceFileLoader("testbin_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader("testbin_script", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["testbin_script"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_last_line_is_the_directory_holding_every_binary() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    directory = Path(proc.stdout.strip().splitlines()[-1])
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "dex", "helm"):
        assert os.access(directory / name, os.X_OK), name
    assert (directory / "crds" / "postgresql.cnpg.io_clusters.yaml").exists()


def test_kubebuilder_assets_are_used_instead_of_building(tmp_path: Path) -> None:
    assets = support_testbin.testbin_dir("etcd", "kube")
    proc = run("etcd", "kube", PREVIEW_BROKER_TESTBIN=str(tmp_path / "cache"), KUBEBUILDER_ASSETS=str(assets))
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.strip().splitlines()[-1])
    assert out == tmp_path / "cache"
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        assert (out / name).is_symlink() and (out / name).resolve() == (assets / name).resolve()
    assert "KUBEBUILDER_ASSETS" in proc.stderr


def test_unknown_program_is_refused() -> None:
    proc = run("kubelet")
    assert proc.returncode == 2 and "unknown program kubelet" in proc.stderr


def test_a_module_that_fails_names_itself_and_the_step(tmp_path: Path) -> None:
    tb = _module()
    bogus = tb.Tool(name="bogus", module="github.com/preview-broker-tests/does-not-exist", version="v0.0.1",
                    packages=(("github.com/preview-broker-tests/does-not-exist/cmd/x", "x"),))
    with pytest.raises(tb.BuildError) as err:
        tb.build(bogus, tmp_path)
    assert "github.com/preview-broker-tests/does-not-exist@v0.0.1" in str(err.value)
    assert "failed at" in str(err.value)


def test_staging_replaces_are_derived_from_the_served_go_mod() -> None:
    tb = _module()
    replaces = dict(tb.local_replaces(tb.TOOLS["kube"], dict(os.environ), ROOT))
    assert replaces["k8s.io/api"] == "v0.37.2" and replaces["k8s.io/apiserver"] == "v0.37.2"
    assert len(replaces) >= 30
