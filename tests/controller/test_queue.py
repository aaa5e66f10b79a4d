"""The work queue: one run per key at a time, bursts collapse, changes overtake bulk passes."""

from __future__ import annotations

import asyncio

from kube.queue import WorkQueue


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_failures_back_off_per_key_exponentially_up_to_the_cap_and_success_resets() -> None:
    q = WorkQueue(retry_base=0.5, retry_cap=4.0)
    assert [q.retry("a") for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert q.retry("b") == 0.5  # another key is not slowed down by a's failures
    q.forget("a")
    assert q.failures("a") == 0 and q.retry("a") == 0.5


async def test_a_retry_waits_its_delay_before_a_worker_sees_it() -> None:
    q = WorkQueue(retry_base=0.2)
    q.retry("a")
    assert len(q) == 0 and q.delayed() == 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(q.get(), 2) == "a"
    assert loop.time() - started >= 0.18 and q.delayed() == 0


async def test_depth_and_oldest_wait_are_measured() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    assert q.oldest_wait() == 0.0
    q.add("a", bulk=True)
    clock.now += 5
    q.add("b")
    q.add("a")  # promoted, but it has waited since its first add
    clock.now += 2
    assert len(q) == 2 and q.oldest_wait() == 7.0
    assert await take(q, 1) == ["b"]  # the change goes first...
    assert q.oldest_wait() == 7.0  # ...and a is still the oldest waiting
    assert await take(q, 1) == ["a"]
    assert q.oldest_wait() == 0.0


async def test_side_job_worker_retries_a_failing_key_with_backoff_and_keeps_serving_others() -> None:
    import logging

    from kube.queue import drain_forever

    q = WorkQueue(retry_base=0.1, retry_cap=0.4)
    attempts: dict[str, list[float]] = {"bad": [], "good": []}
    loop = asyncio.get_running_loop()

    async def handle(key: str) -> None:
        attempts[key].append(loop.time())
        if key == "bad":
            raise ValueError("boom")

    worker = asyncio.create_task(drain_forever(q, handle, job="t", expected=(ValueError,),
                                               log=logging.getLogger("t")))
    q.add("bad")
    q.add("good")
    await asyncio.sleep(1.3)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert len(attempts["good"]) == 1
    gaps = [b - a for a, b in zip(attempts["bad"], attempts["bad"][1:])]
    assert len(gaps) >= 3
    assert 0.09 <= gaps[0] < 0.2 and 0.19 <= gaps[1] < 0.3 and all(0.39 <= g < 0.5 for g in gaps[2:])
