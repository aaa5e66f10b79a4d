from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import respx
from starlette.testclient import TestClient

from broker.allowlist import MutableAllowlist
from broker.app import create_app
from broker.settings import BrokerSettings
from foundation.clock import FrozenClock
from tests.support.brokerunit import PR1, PR2, PUBLIC, make_settings
from tests.support.fakeidp import FakeIdP


@pytest.fixture
def allowlist() -> MutableAllowlist:
    return MutableAllowlist({PR1, PR2})


@pytest.fixture
def clock() -> FrozenClock:
    import time

    return FrozenClock(time.time())


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    with respx.mock(assert_all_called=False) as router:
        yield FakeIdP(router).install()


@pytest.fixture
def settings() -> BrokerSettings:
    return make_settings()


@pytest.fixture
def client(settings: BrokerSettings, allowlist: MutableAllowlist, clock: FrozenClock, idp: FakeIdP) -> Iterator[TestClient]:
    app = create_app(settings, allowlist=allowlist, clock=clock)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as c:
        yield c


@pytest.fixture
def nginx_client(allowlist: MutableAllowlist, clock: FrozenClock, idp: FakeIdP) -> Iterator[TestClient]:
    """A broker behind nginx-style auth-url (FORWARD_AUTH_PROXY=nginx)."""
    app = create_app(make_settings(forward_auth_proxy="nginx"), allowlist=allowlist, clock=clock)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as c:
        yield c


@pytest.fixture
def make_client(allowlist: MutableAllowlist, clock: FrozenClock, idp: FakeIdP) -> Iterator[Callable[..., TestClient]]:
    """A broker with settings of the test's own (make_settings overrides), closed at the end."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), allowlist=allowlist, clock=clock)
        c = TestClient(app, base_url=PUBLIC, follow_redirects=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
