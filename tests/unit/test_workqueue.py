"""The keyed work queue shared by the binder and the Services controller."""

from __future__ import annotations

import asyncio

from lbaas.workqueue import KeyedQueue
from unit.fakes import async_test, eventually


@async_test
async def test_a_key_added_many_times_while_waiting_is_processed_once() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def process(key: str) -> None:
        await gate.wait()
        seen.append(key)

    queue: KeyedQueue[str] = KeyedQueue(process, name="t")
    queue.add("blocker")
    queue.start(1)
    await asyncio.sleep(0)  # the only worker now holds "blocker"
    for _ in range(5):
        queue.add("a")
    gate.set()
    await eventually(lambda: seen == ["blocker", "a"])
    await asyncio.sleep(0.05)
    assert seen == ["blocker", "a"]
    await queue.stop()


@async_test
async def test_one_worker_per_key_and_one_more_turn_for_a_change_during_a_turn() -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    turns: list[str] = []
    release = asyncio.Event()

    async def process(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        turns.append(key)
        if len(turns) == 1:
            await release.wait()
        running.discard(key)

    queue: KeyedQueue[str] = KeyedQueue(process, name="t")
    queue.start(4)
    queue.add("vip")
    await eventually(lambda: turns == ["vip"])
    queue.add("vip")  # during its turn: no second worker takes it now
    queue.add("vip")
    await asyncio.sleep(0.05)
    assert turns == ["vip"] and queue.busy("vip")
    release.set()
    await eventually(lambda: turns == ["vip", "vip"])
    await asyncio.sleep(0.05)
    assert turns == ["vip", "vip"] and not overlaps and not queue.busy("vip")
    await queue.stop()


@async_test
async def test_a_failing_key_is_retried_with_backoff_and_others_go_on() -> None:
    calls: dict[str, list[float]] = {"bad": [], "good": []}
    loop = asyncio.get_running_loop()

    async def process(key: str) -> None:
        calls[key].append(loop.time())
        if key == "bad" and len(calls["bad"]) < 3:
            raise RuntimeError("boom")

    queue: KeyedQueue[str] = KeyedQueue(process, name="t", backoff_base=0.05, backoff_max=1)
    queue.start(1)
    queue.add("bad")
    queue.add("good")
    await eventually(lambda: len(calls["bad"]) == 3)
    assert len(calls["good"]) == 1
    gaps = [b - a for a, b in zip(calls["bad"], calls["bad"][1:], strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # 0.05·2, then 0.05·4
    await asyncio.sleep(0.3)
    assert len(calls["bad"]) == 3  # succeeded: no more retries
    await queue.stop()


@async_test
async def test_stop_forgets_queued_and_scheduled_keys() -> None:
    seen: list[str] = []

    async def process(key: str) -> None:
        seen.append(key)

    queue: KeyedQueue[str] = KeyedQueue(process, name="t")
    queue.add("now")
    queue.add_after("later", 0.05)
    await queue.stop()
    queue.start(1)
    await asyncio.sleep(0.15)
    assert seen == [] and not queue.busy("now")
    queue.add("again")
    await eventually(lambda: seen == ["again"])
    await queue.stop()
