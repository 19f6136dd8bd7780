"""Coalescing driver calls of one device: many VIPs' requests, one call.

A cold start, or a new owner taking a device over, asks for hundreds of applies (or health
reads) of one device at once. Sent one by one they would serialise on the device (HAProxy:
one reload each); a :class:`Batcher` sends whatever is waiting as one call of the driver's
``*_many`` method and hands each caller its own outcome. A lone request goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

Call = Callable[[list[Item]], Awaitable[dict[Hashable, Answer]]]


class Batcher(Generic[Item, Answer]):
    """Queue items keyed by ``key``; one ``call`` at a time takes all that wait.

    ``call`` returns an answer per key; a key it leaves out gets ``missing``. An exception
    from ``call`` goes to every caller of that batch. A newer item for a key replaces the
    older one still waiting (both callers get the newer one's answer).
    """

    def __init__(
        self, call: Call[Item, Answer], key: Callable[[Item], Hashable], missing: Answer
    ) -> None:
        self._call = call
        self._key = key
        self._missing = missing
        self._waiting: dict[Hashable, tuple[Item, list[asyncio.Future[Answer]]]] = {}
        self._started: dict[Hashable, list[asyncio.Event]] = {}
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: Item, started: asyncio.Event | None = None) -> Answer:
        """Queue ``item``; its answer. ``started`` is set when its batch goes to the device
        (time spent queued behind other VIPs is not time the device takes)."""
        key = self._key(item)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        _, futures = self._waiting.get(key, (item, []))
        futures.append(future)
        self._waiting[key] = (item, futures)
        if started is not None:
            self._started.setdefault(key, []).append(started)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            items = [item for item, _ in batch.values()]
            for key in batch:
                for event in self._started.pop(key, ()):
                    event.set()
            try:
                answers = await self._call(items)
            except BaseException as exc:
                for _, futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for key, (_, futures) in batch.items():
                answer = answers.get(key, self._missing)
                for future in futures:
                    if not future.done():
                        future.set_result(answer)

    def cancel(self) -> None:
        if self._running is not None:
            self._running.cancel()
        for _, futures in self._waiting.values():
            for future in futures:
                future.cancel()
        self._waiting.clear()
