"""/healthz tells the event loop's and the watches' state, though a thread serves it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge

from controller.health import Health, serve_probes


class FakeWatch:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stopped = False
        self.failing = 0.0

    def failing_for(self, now: float | None = None) -> float:
        return self.failing


@pytest.fixture
def probes():
    registry = CollectorRegistry()
    Gauge("preview_broker_test", "a metric", registry=registry).set(7)
    health = Health(stall_after=0.5, watch_dead_after=30)
    server = serve_probes(0, registry, health, addr="127.0.0.1")
    yield health, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


async def _get(url: str) -> httpx.Response:
    # From another thread, as the kubelet probes while the event loop is busy or not.
    return await asyncio.to_thread(httpx.get, url, timeout=5)


async def test_healthy_loop_and_watches_answer_200_and_metrics_are_served(probes) -> None:
    health, url = probes
    beat = asyncio.create_task(health.heartbeat(interval=0.1))
    try:
        health.watches = lambda: [FakeWatch("namespaces")]
        r = await _get(f"{url}/healthz")
        assert (r.status_code, r.text) == (200, "ok\n")
        assert "preview_broker_test 7.0" in (await _get(f"{url}/metrics")).text
    finally:
        beat.cancel()


async def test_a_stuck_event_loop_fails_healthz_though_the_probe_thread_runs(probes) -> None:
    health, url = probes
    beat = asyncio.create_task(health.heartbeat(interval=0.1))
    await asyncio.sleep(0.2)
    answers: list[httpx.Response] = []

    def probe_later() -> None:
        time.sleep(0.8)
        answers.append(httpx.get(f"{url}/healthz", timeout=5))

    prober = asyncio.get_running_loop().run_in_executor(None, probe_later)
    time.sleep(1.5)  # the event loop is stuck: no heartbeat, no task runs
    await prober
    assert answers[0].status_code == 503 and answers[0].text.startswith("event loop stalled for")
    await asyncio.sleep(0.3)  # running again: the next heartbeat heals it
    assert (await _get(f"{url}/healthz")).status_code == 200
    beat.cancel()


@pytest.mark.parametrize(
    ("stopped", "failing", "problem"),
    [(True, 0.0, "watch namespaces stopped"), (False, 31.0, "watch namespaces failing for 31s"), (False, 29.0, None)],
)
async def test_a_dead_watch_fails_healthz(probes, stopped, failing, problem) -> None:
    health, url = probes
    beat = asyncio.create_task(health.heartbeat(interval=0.1))
    try:
        watch = FakeWatch("namespaces")
        watch.stopped, watch.failing = stopped, failing
        health.watches = lambda: [FakeWatch("ingresses"), watch]
        r = await _get(f"{url}/healthz")
        assert (r.status_code, r.text) == ((503, f"{problem}\n") if problem else (200, "ok\n"))
    finally:
        beat.cancel()


async def test_a_watch_failing_since_its_last_success_reports_how_long(monkeypatch) -> None:
    from kube.watch import Watcher

    now = [100.0]
    monkeypatch.setattr("kube.watch.time.monotonic", lambda: now[0])
    w = Watcher(None, "/api/v1/namespaces", name="t", on_sync=lambda items: None,  # type: ignore[arg-type]
                on_event=lambda t, o: None)
    assert w.failing_for() == 0.0
    w._failed()
    now[0] = 130.0
    w._failed()  # still failing: counted from the first failure
    assert w.failing_for() == 30.0
    w._ok()
    assert w.failing_for() == 0.0
