"""The work queue: one run per key at a time, bursts collapse, changes overtake bulk passes."""

from __future__ import annotations

import asyncio

from controller.queue import WorkQueue


async def take(queue: WorkQueue, n: int) -> list[str]:
    out = []
    for _ in range(n):
        key = await asyncio.wait_for(queue.get(), 1)
        out.append(key)
        queue.done(key)
    return out


async def test_repeated_adds_collapse_into_one_run() -> None:
    q = WorkQueue()
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert await take(q, 2) == ["a", "b"] and q.idle()


async def test_a_change_is_served_before_a_bulk_pass() -> None:
    q = WorkQueue()
    for i in range(1000):
        q.add(f"ns-{i}", bulk=True)
    q.add("new-preview")
    assert (await take(q, 1)) == ["new-preview"]
    assert len(q) == 1000


async def test_a_bulk_key_that_changes_moves_to_the_front_and_runs_once() -> None:
    q = WorkQueue()
    for key in ("a", "b", "c"):
        q.add(key, bulk=True)
    q.add("c")  # c changed while waiting in the bulk lane
    q.add("b", bulk=True)  # already waiting: no second entry
    assert await take(q, 3) == ["c", "a", "b"]
    assert q.idle() and len(q) == 0


async def test_a_key_added_while_running_runs_again_after() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed during its reconcile
    assert len(q) == 0  # not handed to a second worker meanwhile
    q.done(key)
    assert await take(q, 1) == ["a"] and q.idle()


async def test_get_waits_for_work_and_add_after_delays_it() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    q.add_after("later", 0.1)
    q.add_after("later", 5)  # a later re-add does not postpone the earlier one
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(waiter, 1) == "later"
    assert 0.08 <= loop.time() - started < 1
