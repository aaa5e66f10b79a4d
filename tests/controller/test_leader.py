"""Leader election against a fake apiserver that answers 404, 409, 500 or nothing at all on each Lease call."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from controller.health import Health
from controller.main import run_controller
from controller.metrics import ControllerMetrics
from controller.settings import ControllerSettings
from kube.client import NotLeader
from kube.leader import LeaderElector
from tests.support.fake_apiserver import FakeApiserver

NS, LEASE = "preview-broker", "ctrl"
# Short, in client-go's proportions (15 / 10 / 2): lease > renew deadline > 1.2 x retry.
DURATION, DEADLINE, RETRY = 1.5, 1.0, 0.2
PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


@pytest.fixture
async def api():
    server = await FakeApiserver().start()
    kube = await server.kube()
    server.client = kube  # type: ignore[attr-defined]
    yield server
    await kube.close()
    await server.stop()


def elector(api: FakeApiserver, identity: str = "me") -> LeaderElector:
    return LeaderElector(api.client, NS, LEASE, identity,  # type: ignore[attr-defined]
                         lease_duration=DURATION, renew_deadline=DEADLINE, retry_period=RETRY)


def lease_calls(api: FakeApiserver) -> list[tuple[str, float]]:
    return [(r.method, r.at) for r in api.requests if "/leases" in r.path]


def free_lease(api: FakeApiserver) -> None:
    api.put_lease(NS, LEASE, {"holderIdentity": "", "leaseDurationSeconds": 1})


def failures(caplog, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


async def test_acquire_creates_the_lease_and_the_fence_opens_only_while_held(api: FakeApiserver) -> None:
    e = elector(api)
    with pytest.raises(NotLeader):
        e.remaining()
    await asyncio.wait_for(e.acquire(), 5)
    spec = api.lease(NS, LEASE)["spec"]
    assert spec["holderIdentity"] == "me" and spec["leaseDurationSeconds"] == 2 and spec["leaseTransitions"] == 0
    assert 0 < e.remaining() <= DEADLINE and e.is_leader


@pytest.mark.parametrize(
    ("method", "answers", "lease_exists", "logged"),
    [
        ("GET", [500, 500, 500], False, 3),
        ("GET", ["hang"], False, 1),  # cut at the renew deadline, then retried
        ("POST", [404, 404], False, 2),  # the Lease's namespace is missing (the first symptom)
        ("POST", [403], False, 1),  # RBAC
        ("POST", [409], False, 0),  # another candidate created it first: a normal race, not an error
        ("PUT", [500, 503], True, 2),
        ("PUT", [409, 409], True, 0),  # lost the race for a free lease
        ("PUT", ["hang"], True, 1),
    ],
)
async def test_errors_while_acquiring_are_retried_logged_and_never_count_as_acquired(
    api: FakeApiserver, caplog, method, answers, lease_exists, logged
) -> None:
    caplog.set_level(logging.INFO, logger="preview_broker.leader")
    if lease_exists:
        free_lease(api)
    api.fail(method, *answers)
    e = elector(api)
    task = asyncio.create_task(e.acquire())
    while api._script.get(method):  # every scripted answer given
        assert not task.done() and not e.is_leader
        with pytest.raises(NotLeader):
            e.remaining()
        await asyncio.sleep(0.02)
    await asyncio.wait_for(task, 10)
    assert e.is_leader and api.lease(NS, LEASE)["spec"]["holderIdentity"] == "me"
    records = failures(caplog, "lease_acquire_failed")
    assert len(records) == logged
    if logged:
        error = records[0].error  # type: ignore[attr-defined]
        assert error == "timed out" if answers[0] == "hang" else error.startswith(str(answers[0]))


async def test_acquire_backs_off_exponentially_up_to_the_lease_duration(api: FakeApiserver, caplog) -> None:
    caplog.set_level(logging.INFO, logger="preview_broker.leader")
    api.missing_namespaces.add(NS)
    task = asyncio.create_task(elector(api).acquire())
    await asyncio.sleep(4.5)
    assert not task.done()
    delays = [r.retry_in for r in failures(caplog, "lease_acquire_failed")]  # type: ignore[attr-defined]
    # 0.2, 0.4, 0.8, then capped at 1.5; each with up to 20 % jitter (client-go's factor 1.2)
    for delay, base in zip(delays, [0.2, 0.4, 0.8, 1.5, 1.5]):
        assert base <= delay <= base * 1.2 + 0.01
    assert len(delays) >= 4
    api.missing_namespaces.clear()
    await asyncio.wait_for(task, 5)


async def test_a_live_lease_of_another_replica_is_not_taken_and_an_expired_one_is(api: FakeApiserver) -> None:
    api.put_lease(NS, LEASE, {"holderIdentity": "other", "leaseDurationSeconds": 1, "renewTime": "t1",
                              "leaseTransitions": 4})
    e = elector(api)
    task = asyncio.create_task(e.acquire())
    loop = asyncio.get_running_loop()
    started = loop.time()
    # "other" renews for a while: never taken meanwhile
    for i in range(4):
        await asyncio.sleep(0.5)
        api.put_lease(NS, LEASE, {**api.lease(NS, LEASE)["spec"], "renewTime": f"t{i + 2}"})
        assert not task.done()
    renewed_last = loop.time()
    await asyncio.wait_for(task, 5)
    # taken one lease duration (1 s, the holder's) after the last renewal this replica saw, plus a retry
    assert 1.0 <= loop.time() - renewed_last <= 1.0 + 2 * RETRY * 1.2 + 0.3
    assert loop.time() - started > 2
    spec = api.lease(NS, LEASE)["spec"]
    assert spec["holderIdentity"] == "me" and spec["leaseTransitions"] == 5


async def _leader(api: FakeApiserver) -> LeaderElector:
    e = elector(api)
    await asyncio.wait_for(e.acquire(), 5)
    return e


@pytest.mark.parametrize("answer", [500, "hang"])
async def test_renewal_failures_stop_the_leader_at_the_renew_deadline_before_the_lease_could_pass(
    api: FakeApiserver, answer
) -> None:
    e = await _leader(api)
    hold = asyncio.create_task(e.hold())
    await asyncio.sleep(0.5)  # a few good renewals
    assert not hold.done()
    api.fail("GET", *([answer] * 50))
    last_ok = max(t for m, t in lease_calls(api) if m == "PUT")
    await asyncio.wait_for(hold, 5)
    lost_at = time.monotonic()
    with pytest.raises(NotLeader):
        e.remaining()
    # Stopped by the deadline (counted from the start of the last good renewal, which began before
    # its PUT), well before a follower could take over (a lease duration after it saw that renewal).
    assert lost_at - last_ok <= DEADLINE + 0.05
    assert lost_at - last_ok < DURATION


async def test_renewal_sees_another_holder_and_stops_at_once(api: FakeApiserver, caplog) -> None:
    caplog.set_level(logging.INFO, logger="preview_broker.leader")
    e = await _leader(api)
    hold = asyncio.create_task(e.hold())
    await asyncio.sleep(0.3)
    api.put_lease(NS, LEASE, {**api.lease(NS, LEASE)["spec"], "holderIdentity": "usurper"})
    assert await asyncio.wait_for(hold, 2) == "lease held by usurper"
    assert not e.is_leader


async def test_a_conflict_on_its_own_lease_is_retried_not_taken_as_loss(api: FakeApiserver) -> None:
    e = await _leader(api)
    hold = asyncio.create_task(e.hold())
    api.fail("PUT", 409)
    await asyncio.sleep(1.5)  # longer than the deadline: renewals after the conflict kept it
    assert not hold.done() and e.is_leader
    hold.cancel()


async def test_a_leader_paused_past_its_deadline_writes_nothing_when_it_wakes(api: FakeApiserver) -> None:
    """What SIGSTOP does to a process, done to the event loop: it stops, then resumes late."""
    e = await _leader(api)
    fenced = api.client.fenced(e.remaining)  # type: ignore[attr-defined]
    await fenced.create("/api/v1/namespaces/pr-1/events", {"reason": "before"})
    hold = asyncio.create_task(e.hold())
    await asyncio.sleep(0.05)
    time.sleep(DEADLINE + 0.1)  # the whole loop frozen: no renewal, no timer
    woke = time.monotonic()
    with pytest.raises(NotLeader):
        await fenced.create("/api/v1/namespaces/pr-1/events", {"reason": "after"})
    assert await asyncio.wait_for(hold, 2) == "renew deadline passed"
    assert [r.body["reason"] for r in api.writes(leases=False)] == ["before"]
    assert api.writes(since=woke) == []  # not even a Lease renewal: it is not ours to renew any more


async def test_release_frees_the_lease_only_while_it_is_held(api: FakeApiserver) -> None:
    e = await _leader(api)
    await e.release()
    assert api.lease(NS, LEASE)["spec"]["holderIdentity"] == ""
    other = elector(api, "next")
    started = time.monotonic()
    await asyncio.wait_for(other.acquire(), 5)
    assert time.monotonic() - started < 0.5  # a released lease is taken at once
    writes = len(api.writes())
    await e.release()  # no longer held: touches nothing
    assert len(api.writes()) == writes and api.lease(NS, LEASE)["spec"]["holderIdentity"] == "next"


async def test_the_controller_reconciles_nothing_while_the_lease_cannot_be_acquired(
    api: FakeApiserver, caplog
) -> None:
    """The issue's symptom: with the Lease's namespace missing, acquire() raised and main took the
    finished task for 'acquired' and started reconciling."""
    caplog.set_level(logging.INFO)
    api.missing_namespaces.add(NS)
    settings = ControllerSettings.model_validate({
        "preview_domains": ["preview.example.com"], "public_url": "https://auth.preview.example.com", "identity": "me", "kube_namespace": NS, "lease_name": LEASE,
        "lease_duration": 2, "renew_deadline": 1, "retry_period": 0.2})
    metrics = ControllerMetrics()
    stop = asyncio.Event()
    task = asyncio.create_task(run_controller(api.client, settings, metrics=metrics,  # type: ignore[attr-defined]
                                              health=Health(), stop=stop))
    await asyncio.sleep(2.5)
    assert not task.done()
    assert {r.path for r in api.requests} == {PATH, f"{PATH}/{LEASE}"}  # only the Lease: no list, no watch
    assert metrics.leader._value.get() == 0
    assert len(failures(caplog, "lease_acquire_failed")) >= 3
    assert "Task exception was never retrieved" not in caplog.text
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0


def _settings(**kw) -> ControllerSettings:
    return ControllerSettings.model_validate({
        "preview_domains": ["preview.example.com"], "public_url": "https://auth.preview.example.com", "identity": "me", "kube_namespace": NS, "lease_name": LEASE,
        "lease_duration": 2, "renew_deadline": 1, "retry_period": 0.2, **kw})


async def test_the_controller_runs_once_it_holds_the_lease_and_hands_it_over_when_stopped(api: FakeApiserver) -> None:
    metrics, health, stop = ControllerMetrics(), Health(), asyncio.Event()
    # Client-go's own durations: this test is about the hand-over, and the controller's start-up shares
    # the event loop with the fake apiserver, so a busy machine must not make it miss a 1 s renewal.
    calm = _settings(lease_duration=15, renew_deadline=10, retry_period=2)
    task = asyncio.create_task(run_controller(api.client, calm, metrics=metrics,  # type: ignore[attr-defined]
                                              health=health, stop=stop))

    def listed() -> bool:
        return any(r.path == "/api/v1/namespaces" for r in api.requests)

    while not listed():
        await asyncio.sleep(0.05)
    assert metrics.leader._value.get() == 1 and len(list(health.watches())) == 3
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert api.lease(NS, LEASE)["spec"]["holderIdentity"] == ""  # the next leader need not wait
    assert metrics.leader._value.get() == 0 and list(health.watches()) == []


async def test_the_controller_stops_and_exits_1_when_another_replica_holds_the_lease(api: FakeApiserver) -> None:
    metrics, stop = ControllerMetrics(), asyncio.Event()
    task = asyncio.create_task(run_controller(api.client, _settings(), metrics=metrics,  # type: ignore[attr-defined]
                                              health=Health(), stop=stop))
    while metrics.leader._value.get() != 1:
        await asyncio.sleep(0.05)
    api.put_lease(NS, LEASE, {**api.lease(NS, LEASE)["spec"], "holderIdentity": "usurper"})
    taken = time.monotonic()
    assert await asyncio.wait_for(task, 5) == 1
    assert api.writes(since=taken) == []  # not even a release: the lease is the usurper's
    assert api.lease(NS, LEASE)["spec"]["holderIdentity"] == "usurper"
