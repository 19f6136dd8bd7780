"""A keyed work queue, as client-go's ``workqueue``: the controller role's one way to queue work.

The binder (a VIP to bind) and the Services controller (a Service to reconcile) both need the
same guarantees, which this class gives once:

- a key waits in the queue at most once, however often it is added (a burst of changes to one
  object is one turn);
- a key is processed by one worker at a time (two binds of one VIP would fight over its
  reservation); a key added while it is processed gets one more turn right after;
- a turn that raises is retried after an exponential backoff per key (``backoff_base`` ·
  2^failures, at most ``backoff_max``), reset by a turn that succeeds; the error is logged;
- ``stop`` cancels the workers and forgets everything queued (a new leader starts afresh).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class KeyedQueue(Generic[K]):
    def __init__(
        self,
        process: Callable[[K], Awaitable[object]],
        *,
        name: str,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
    ) -> None:
        self._process = process
        self.name = name
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._running: set[K] = set()
        self._again: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []

    def start(self, workers: int) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self.name} worker {i}")
            for i in range(workers)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._workers = []
        self._queue = asyncio.Queue()
        self._queued.clear()
        self._running.clear()
        self._again.clear()
        self._failures.clear()
        self._timers.clear()

    def add(self, key: K) -> None:
        """Queue ``key`` (once); during its turn: one more turn after it."""
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (the earliest such request wins)."""
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        if timer is not None and timer.when() <= loop.time() + delay:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_later(delay, self._due, key)

    def _due(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def busy(self, key: K) -> bool:
        """Whether ``key`` is queued or being processed."""
        return key in self._queued or key in self._running

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._running.add(key)
            try:
                await self._process(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** min(failures, 16))
                log.warning(
                    "%s: %s failed (%s: %s); retrying in %.1fs",
                    self.name, key, type(exc).__name__, exc, delay, exc_info=failures == 1,
                )  # fmt: skip
                self.add_after(key, delay)
            finally:
                self._running.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.add(key)
