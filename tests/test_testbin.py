"""scripts/testbin: prints its directory last, honours KUBEBUILDER_ASSETS, fails loudly and clearly,
and checks (without building) that the module proxy still serves every pinned version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import testbin as support_testbin

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "testbin"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.mark.cluster  # builds (or finds) every binary
def test_last_line_is_the_directory_holding_every_binary() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    directory = Path(proc.stdout.strip().splitlines()[-1])
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "dex", "helm"):
        assert os.access(directory / name, os.X_OK), name
    assert (directory / "crds" / "postgresql.cnpg.io_clusters.yaml").exists()


@pytest.mark.cluster
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


@pytest.mark.cluster  # asks the real module proxy
def test_a_module_that_fails_names_itself_and_the_step(tmp_path: Path) -> None:
    tb = support_testbin.load_package()
    bogus = tb.core.Tool(name="bogus", module="github.com/preview-broker-tests/does-not-exist", version="v0.0.1",
                    packages=(("github.com/preview-broker-tests/does-not-exist/cmd/x", "x"),))
    with pytest.raises(tb.core.BuildError) as err:
        tb.gobuild.build(bogus, tmp_path)
    assert "github.com/preview-broker-tests/does-not-exist@v0.0.1" in str(err.value)
    assert "failed at" in str(err.value)
    assert "--pin bogus=VERSION" in str(err.value)
    assert not (tmp_path / ".bogus.stamp").exists()


@pytest.mark.cluster  # asks the real module proxy
def test_staging_replaces_are_derived_from_the_served_go_mod() -> None:
    tb = support_testbin.load_package()
    kube = tb.catalog.TOOLS["kube"]
    replaces = dict(tb.goproxy.derive_replaces(kube, tb.goproxy.served_gomod(kube)))
    assert replaces["k8s.io/api"] == "v0.37.2" and replaces["k8s.io/apiserver"] == "v0.37.2"
    assert "k8s.io/sample-controller" not in replaces  # not required by the module: never fetched
    assert len(replaces) >= 25


@pytest.mark.cluster  # asks the real module proxy
def test_the_real_pins_are_all_served_today() -> None:
    proc = run("--check")
    assert proc.returncode == 0, proc.stderr
    assert "the proxy serves all" in proc.stderr
