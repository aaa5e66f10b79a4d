"""The watch loop against a fake apiserver that misbehaves on purpose (stalls, 410s, garbage)."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes_asyncio import client as k8s

from kube.client import Kube
from kube.watch import Backoff, Watcher


class FakeApiserver:
    """Answers list requests with `items`, and watch requests per `watch_script` entry."""

    def __init__(self) -> None:
        self.items = [{"metadata": {"name": "a", "resourceVersion": "5"}}]
        self.watch_script: list[str] = []  # "stall" | "gone" | "event" | "garbage"
        self.lists = 0
        self.watches = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = request.split(" ")[1]
        if "watch=1" not in path:
            self.lists += 1
            body = json.dumps({"items": self.items, "metadata": {"resourceVersion": "10"}}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            writer.close()
            return
        self.watches += 1
        action = self.watch_script.pop(0) if self.watch_script else "stall"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        if action == "gone":
            line = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}) + "\n"
        elif action == "event":
            line = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "b", "resourceVersion": "11"}}}) + "\n"
        elif action == "garbage":
            line = "this is not json\n"
        else:
            line = ""
        if line:
            data = line.encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()
        await asyncio.sleep(30)  # then say nothing: a silent, half-open stream
        writer.close()


@pytest.fixture
async def fake():
    api = FakeApiserver()
    server = await asyncio.start_server(api.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    kube = Kube(k8s.ApiClient(config))
    yield api, kube
    await kube.close()
    server.close()


async def _run_watcher(kube: Kube, seconds: float, **kw):
    seen: list[tuple[str, str]] = []
    syncs: list[int] = []
    restarts: list[str] = []
    w = Watcher(kube, "/api/v1/namespaces", name="t", inactivity=0.3,
                on_sync=lambda items: syncs.append(len(items)),
                on_event=lambda t, o: seen.append((t, o["metadata"]["name"])),
                on_restart=restarts.append, **kw)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return w, seen, syncs, restarts


async def test_silent_stall_reconnects(fake) -> None:
    api, kube = fake
    w, _, syncs, restarts = await _run_watcher(kube, 1.2)
    assert w.synced.is_set() and syncs == [1]
    assert restarts.count("stall") >= 2 and api.watches >= 3
    assert api.lists == 1  # a stall re-watches, it does not re-list


async def test_410_relists(fake) -> None:
    api, kube = fake
    api.watch_script = ["event", "gone"]
    _, seen, syncs, restarts = await _run_watcher(kube, 1.5)
    assert ("ADDED", "b") in seen
    assert "gone" in restarts and api.lists >= 2 and len(syncs) >= 2


async def test_garbage_line_backs_off_and_recovers(fake) -> None:
    api, kube = fake
    api.watch_script = ["garbage", "event"]
    _, seen, _, restarts = await _run_watcher(kube, 1.5)
    assert "error" in restarts and ("ADDED", "b") in seen


def test_backoff_grows_and_caps() -> None:
    b = Backoff(base=1, cap=4)
    delays = [b.next() for _ in range(6)]
    assert all(0.5 <= d <= 4 for d in delays) and delays[-1] >= 2
    b.reset()
    assert b.next() <= 1


async def test_transform_applies_to_listed_items_and_events(fake) -> None:
    """Handlers get what `transform` makes of each object, never the object itself."""
    api, kube = fake
    api.watch_script = ["event"]
    synced: list[list[object]] = []
    events: list[tuple[str, object]] = []
    w = Watcher(kube, "/api/v1/namespaces", name="t", inactivity=0.3,
                on_sync=synced.append, on_event=lambda t, item: events.append((t, item)),
                transform=lambda o: ("slim", o["metadata"]["name"]))
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0.6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert synced[0] == [("slim", "a")]
    assert ("ADDED", ("slim", "b")) in events
    assert w.resource_version == "11"  # still read from the raw event, before the transform


class _GatedStream:
    """A watch response whose next line arrives when the test says so."""

    def __init__(self) -> None:
        self.gates: asyncio.Queue[asyncio.Future[bytes]] = asyncio.Queue()
        self.content = self

    async def readline(self) -> bytes:
        gate = asyncio.get_running_loop().create_future()
        await self.gates.put(gate)
        return await gate

    def close(self) -> None:
        pass


class _GatedKube:
    def __init__(self) -> None:
        self.stream = _GatedStream()

    async def get(self, path: str, **query: str) -> dict:
        return {"items": [], "metadata": {"resourceVersion": "1"}}

    async def open(self, method: str, path: str, **kw: object) -> _GatedStream:
        return self.stream


async def test_cancel_is_not_lost_when_a_line_arrives_at_the_same_moment() -> None:
    """Shutdown cancels the watch; a line landing in the same loop turn must not swallow that.

    (asyncio.wait_for on Python 3.11 returns the inner result and drops the cancellation when
    both happen together; the watch then ran on forever and shutdown hung.)
    """
    kube = _GatedKube()
    w = Watcher(kube, "/api/v1/namespaces", name="t", inactivity=30,  # type: ignore[arg-type]
                on_sync=lambda items: None, on_event=lambda t, o: None)
    task = asyncio.create_task(w.run())
    gate = await asyncio.wait_for(kube.stream.gates.get(), 5)
    line = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "b", "resourceVersion": "2"}}}) + "\n"
    gate.set_result(line.encode())
    task.cancel()  # same loop turn as the line
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "the watch task ignored its cancellation"
    assert task.cancelled()
