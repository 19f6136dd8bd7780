"""One loop per VIP: when to reconcile it, and what a reconcile's result means.

A loop is an asyncio task per VIP that its agent serves. ``trigger`` wakes it with a *mode*
(what changed); the first trigger runs at once, triggers arriving during a reconcile are
coalesced into one more turn after ``debounce`` seconds. The loop never runs two reconciles
of one VIP at once, so a VIP's statuses and driver calls never race each other.

What a reconcile returns (:class:`Result`), in the manner of controller-runtime's
``reconcile.Result``: one of four values, each with one meaning for the loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lbaas import metrics

log = logging.getLogger(__name__)

VipKey = tuple[str, str]


class Mode(enum.IntEnum):
    """What a turn must do; a stronger pending mode wins when triggers coalesce."""

    REFRESH = 1
    """Recompute statuses (member health changed, the device's state changed)."""
    VERIFY = 2
    """Compare the device with the tree (resync) and repair drift."""
    APPLY = 3
    """The tree changed: apply it unless the device already has exactly this."""
    FORCE = 4
    """Apply whatever the cache says (a new owner takes over the device)."""


class Result(enum.Enum):
    """What a reconcile's outcome means for the loop of its VIP."""

    DONE = "ok"
    """The device serves the tree as it is now. The loop sleeps until the next trigger or the
    VIP's next resync (spread over ``resync_interval`` by a hash of its key)."""
    RETRY = "retry"
    """A retryable failure (device busy or unreachable, a conflict on a status write). The loop
    runs again after an exponential backoff (1 s, 2 s, 4 s ... ``retry_backoff_max``), unless
    a trigger comes first. Backoff restarts after ``DONE``."""
    BLOCKED = "error"
    """A failure retrying soon cannot fix (the device refuses this tree, the device is in
    Error or NotReady, its worker is starting). The loop waits for a trigger (the tree or the
    device changed), or tries once more at the VIP's next resync (what the device refused may
    depend on the host: a port another process held), never more often."""
    STOP = "stop"
    """The loop ends: the VIP is gone, or it is no longer this agent's to serve. A trigger that
    arrived during this last turn still gets its turn."""


Reconcile = Callable[[VipKey, Mode], Awaitable[Result]]


@dataclass
class _Slot:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    mode: Mode = Mode.REFRESH
    task: asyncio.Task[None] | None = None


class TreeLoops:
    """The loops of every VIP this agent serves."""

    def __init__(
        self,
        reconcile: Reconcile,
        *,
        debounce: float,
        resync_interval: float,
        backoff_max: float,
    ) -> None:
        self.reconcile = reconcile
        self.debounce = debounce
        self.resync_interval = resync_interval
        self.backoff_max = backoff_max
        self._slots: dict[VipKey, _Slot] = {}
        self._started = time.monotonic()

    def __len__(self) -> int:
        return len(self._slots)

    def vip_keys(self) -> list[VipKey]:
        return list(self._slots)

    def trigger(self, key: VipKey, mode: Mode = Mode.APPLY) -> None:
        """Wake (or start) the loop of ``key``."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(mode=mode)
            slot.wake.set()
            slot.task = asyncio.create_task(self._run(key, slot), name=f"tree {key[0]}/{key[1]}")
            return
        slot.mode = max(slot.mode, mode)
        slot.wake.set()

    async def stop(self, key: VipKey) -> None:
        """End the loop of ``key`` (after its reconcile in progress, if any)."""
        slot = self._slots.pop(key, None)
        if slot and slot.task and slot.task is not asyncio.current_task():
            slot.task.cancel()
            await asyncio.gather(slot.task, return_exceptions=True)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(k) for k in list(self._slots)))

    def next_resync(self, key: VipKey, now: float) -> float:
        """The VIP's next verification: a fixed phase per key, so resyncs are spread out."""
        interval = self.resync_interval
        phase = (zlib.crc32(f"{key[0]}/{key[1]}".encode()) % 10_000) / 10_000 * interval
        elapsed = now - self._started - phase
        return now + (interval - elapsed % interval)

    async def _run(self, key: VipKey, slot: _Slot) -> None:
        attempt = 0
        refused = False
        timeout: float | None = None
        while True:
            woke = await _wait(slot.wake, timeout)
            if woke:
                slot.wake.clear()
                mode = slot.mode
                slot.mode = Mode.REFRESH
            else:
                mode = Mode.APPLY if attempt or refused else Mode.VERIFY
            started = time.monotonic()
            try:
                result = await self.reconcile(key, mode)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one tree's bug kill its loop
                log.exception("reconcile of %s/%s failed", *key)
                result = Result.RETRY
            label = "ok" if result is Result.STOP else result.value
            metrics.RECONCILES.labels("VIP", label).inc()
            metrics.RECONCILE_LATENCY.labels("VIP", label).observe(time.monotonic() - started)
            if result is Result.STOP:
                if self._slots.get(key) is not slot:
                    return
                if not slot.wake.is_set():
                    del self._slots[key]
                    return
                # A trigger came during this last turn (a new VIP of the same name, a binding
                # to this agent's device): it gets its turn, like any trigger during a turn.
            now = time.monotonic()
            refused = result is Result.BLOCKED
            if result is Result.RETRY:
                attempt += 1
                timeout = min(self.backoff_max, 2.0 ** (attempt - 1))
            else:
                attempt = 0
                timeout = self.next_resync(key, now) - now
            if slot.wake.is_set() and self.debounce:
                await asyncio.sleep(self.debounce)  # gather the rest of a burst


async def _wait(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for ``event`` (True) or the timeout (False)."""
    if timeout is None:
        await event.wait()
        return True
    try:
        await asyncio.wait_for(event.wait(), max(0.0, timeout))
        return True
    except TimeoutError:
        return False
