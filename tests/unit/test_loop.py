"""``TreeLoops``: when a VIP's reconcile runs again, given what the last one returned.

Most tests script the reconcile's results and replace the loop's wait with one that records
the timeout asked for and lets it expire at once (a virtual clock), so backoff sequences are
checked exactly and instantly; two tests check the real waits with short intervals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import pytest

from lbaas.trees import loop as loop_module
from lbaas.trees.loop import Mode, Result, TreeLoops
from unit.fakes import async_test, eventually

KEY = ("team-a", "web")
RESYNC = 30.0


class Script:
    """A reconcile that returns the given results in turn, then ends the loop."""

    def __init__(self, results: Iterable[Result]) -> None:
        self.results = list(results)
        self.calls: list[tuple[Mode, float]] = []
        self.gate: asyncio.Event | None = None  # when set: each turn waits for it

    async def __call__(self, key: tuple[str, str], mode: Mode) -> Result:
        self.calls.append((mode, time.monotonic()))
        if self.gate is not None:
            await self.gate.wait()
            self.gate.clear()
        if not self.results:
            return Result.STOP
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    @property
    def modes(self) -> list[Mode]:
        return [mode for mode, _ in self.calls]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Timeouts the loops wait for; each one expires at once unless a trigger is pending."""
    asked: list[float] = []

    async def instant(event: asyncio.Event, timeout: float | None) -> bool:
        if event.is_set() or timeout is None:
            await event.wait()
            return True
        asked.append(timeout)
        await asyncio.sleep(0)
        return False

    monkeypatch.setattr(loop_module, "_wait", instant)
    return asked


def loops_for(script: Script, backoff_max: float = 5.0, debounce: float = 0.0) -> TreeLoops:
    return TreeLoops(script, debounce=debounce, resync_interval=RESYNC, backoff_max=backoff_max)


async def finished(loops: TreeLoops) -> None:
    await eventually(lambda: len(loops) == 0, what="the loop to end")


@async_test
async def test_retryable_failures_back_off_exponentially_up_to_the_maximum(
    waits: list[float],
) -> None:
    script = Script([Result.RETRY] * 5)
    loops = loops_for(script, backoff_max=5.0)
    loops.trigger(KEY, Mode.APPLY)
    await finished(loops)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert script.modes == [Mode.APPLY] * 6, "a retry applies"


@async_test
async def test_backoff_restarts_after_a_success(waits: list[float]) -> None:
    ok, retry = Result.DONE, Result.RETRY
    script = Script([retry, retry, ok, retry])
    loops = loops_for(script)
    loops.trigger(KEY, Mode.APPLY)
    await finished(loops)
    assert waits[:2] == [1.0, 2.0]
    assert 0 < waits[2] <= RESYNC  # after the success: the next resync
    assert waits[3] == 1.0
    assert script.modes == [Mode.APPLY, Mode.APPLY, Mode.APPLY, Mode.VERIFY, Mode.APPLY]


@async_test
async def test_a_refused_tree_waits_for_the_resync_not_a_backoff(
    waits: list[float],
) -> None:
    script = Script([Result.BLOCKED, Result.BLOCKED])
    loops = loops_for(script)
    loops.trigger(KEY, Mode.APPLY)
    await finished(loops)
    assert len(waits) == 2 and all(1.0 < w <= RESYNC for w in waits)
    assert script.modes == [Mode.APPLY, Mode.APPLY, Mode.APPLY], "the resync applies again"


@async_test
async def test_an_exception_counts_as_a_retry(waits: list[float]) -> None:
    script = Script([RuntimeError("bug"), Result.DONE])  # type: ignore[list-item]
    loops = loops_for(script)
    loops.trigger(KEY, Mode.APPLY)
    await finished(loops)
    assert waits[0] == 1.0


@async_test
async def test_the_resync_is_spread_by_key_and_within_the_interval() -> None:
    loops = loops_for(Script([]))
    now = time.monotonic()
    first = {key: loops.next_resync(key, now) - now for key in [("ns", f"v{i}") for i in range(50)]}
    assert all(0 < delay <= RESYNC for delay in first.values())
    assert len({round(d, 3) for d in first.values()}) > 40, "phases differ per key"
    later = now + 7.0
    assert loops.next_resync(("ns", "v1"), later) - later == pytest.approx(
        (first[("ns", "v1")] - 7.0) % RESYNC or RESYNC
    )


@async_test
async def test_a_retry_really_waits_and_a_trigger_cuts_the_wait_short() -> None:
    script = Script([Result.RETRY, Result.RETRY, Result.DONE])
    loops = loops_for(script, backoff_max=0.6)
    loops.trigger(KEY, Mode.APPLY)
    await eventually(lambda: len(script.calls) == 2)
    gap = script.calls[1][1] - script.calls[0][1]
    assert 0.55 <= gap < 1.5, gap
    loops.trigger(KEY, Mode.REFRESH)  # during the second backoff
    await eventually(lambda: len(script.calls) == 3)
    assert script.calls[2][1] - script.calls[1][1] < 0.45
    assert script.modes[2] == Mode.REFRESH
    await loops.stop_all()


@async_test
async def test_triggers_during_a_turn_coalesce_into_one_more_with_the_strongest_mode() -> None:
    script = Script([Result.DONE, Result.DONE])
    script.gate = asyncio.Event()
    loops = loops_for(script, debounce=0.02)
    loops.trigger(KEY, Mode.APPLY)
    await eventually(lambda: len(script.calls) == 1)
    for mode in (Mode.REFRESH, Mode.FORCE, Mode.VERIFY, Mode.APPLY):
        loops.trigger(KEY, mode)
    script.gate.set()
    await eventually(lambda: len(script.calls) == 2)
    script.gate.set()
    await asyncio.sleep(0.1)
    assert script.modes == [Mode.APPLY, Mode.FORCE]
    assert len(loops) == 1, "never two turns of one VIP at once, and the loop lives on"
    await loops.stop_all()


@async_test
async def test_an_ended_loop_is_forgotten_and_a_new_trigger_starts_another() -> None:
    script = Script([Result.STOP, Result.DONE])
    loops = loops_for(script)
    loops.trigger(KEY, Mode.APPLY)
    await finished(loops)
    loops.trigger(KEY, Mode.FORCE)
    await eventually(lambda: len(script.calls) == 2)
    assert script.modes == [Mode.APPLY, Mode.FORCE]
    assert loops.vip_keys() == [KEY]
    await loops.stop_all()
    assert len(loops) == 0


@async_test
async def test_a_trigger_during_the_last_turn_is_not_lost() -> None:
    """The turn that ends a loop (the VIP is gone) may race a trigger for a new VIP of the
    same name, or for the VIP bound to this agent's device a moment later."""
    script = Script([Result.STOP, Result.DONE])
    script.gate = asyncio.Event()
    loops = loops_for(script)
    loops.trigger(KEY, Mode.APPLY)
    await eventually(lambda: len(script.calls) == 1)
    loops.trigger(KEY, Mode.APPLY)  # while the ending turn runs
    script.gate.set()
    await eventually(lambda: len(script.calls) == 2, what="a turn for the second trigger")
    script.gate.set()
    await loops.stop_all()
