"""Session fixtures for the real control plane and the real Dex.

Both are built by scripts/testbin when missing; a build failure fails the tests
with the reason, it never skips them.  Component logs are attached to the report
of any failing test.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# authlib installs an "always" warnings filter for its own deprecation notices when it is first
# imported; importing it here, before pytest applies pyproject's filterwarnings around each test,
# keeps those filters in charge (authlib's notice that it prefers the httpx2 fork is expected).
import authlib.deprecate  # noqa: F401
import pytest

from tests.support.controlplane import (
    ControlPlane,
    cleanup,
    install_crds,
    start_control_plane,
)
from tests.support.dex import Dex, app_client, start_dex
from tests.support.localbroker import (
    BROKER_METRICS_PORT,
    BROKER_PORT,
    PUBLIC,
    broker_env,
)
from tests.support.procs import Proc, http_ok, wait_until
from tests.support.reports import Section, logs_on_failure

_live: list[object] = []


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path_factory.mktemp("controlplane"))
    _live.append(cp)
    try:
        install_crds(cp)
        yield cp
    finally:
        _live.remove(cp)
        cleanup(cp)


@pytest.fixture(scope="session")
def dex(tmp_path_factory) -> Iterator[Dex]:
    callback = f"{PUBLIC}/oauth2/callback"
    d = start_dex(tmp_path_factory.mktemp("dex"), [callback], extra_clients=[app_client([callback])])
    _live.append(d.proc)
    try:
        yield d
    finally:
        _live.remove(d.proc)
        d.stop()


@pytest.fixture(scope="session")
def broker_proc(dex: Dex, tmp_path_factory) -> Iterator[Proc]:
    """The broker as users run it: `preview-broker broker`, a real uvicorn process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    env.update(broker_env(PREVIEW_BROKER_OIDC_ISSUER=dex.issuer))
    proc = Proc(
        "broker",
        [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1", "--port", str(BROKER_PORT),
         "--metrics-port", str(BROKER_METRICS_PORT)],
        Path(tmp_path_factory.mktemp("broker")) / "broker.log",
        env=env,
    )
    proc.env = env
    proc.start()
    _live.append(proc)
    try:
        wait_until(http_ok(f"http://127.0.0.1:{BROKER_PORT}/readyz"), "broker /readyz", 30, proc)
        yield proc
    finally:
        _live.remove(proc)
        proc.stop()


def _component_logs() -> Iterator[Section]:
    for thing in _live:
        if isinstance(thing, ControlPlane):
            yield "control plane logs", thing.logs
        elif isinstance(thing, Proc):
            yield f"{thing.name} log", functools.partial(thing.tail, 60)


pytest_runtest_makereport = logs_on_failure(_component_logs)
