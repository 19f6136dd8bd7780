"""The Device Leases an agent holds: taking, renewing, handing over and losing them.

The writing half of :class:`~lbaas.agents.ownership.DeviceOwnership` (which decides, each
tick, what to take and what to hand over): every write is a compare-and-swap through the
``LeaseStore``, and the monotonic *send* time of each successful one is kept, since it is what
``may_start`` counts the Lease's validity from (see the proof in ``ownership``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lbaas import metrics
from lbaas.agents.calls import Callback, call_back, call_in_thread
from lbaas.agents.transfer import transfer_for
from lbaas.leases import (
    DEVICE_ANNOTATION,
    KIND_DEVICE,
    LeaseRecord,
    LeaseStore,
    device_lease_name,
    our_labels,
)

log = logging.getLogger(__name__)


@dataclass
class _Held:
    """A device Lease this process holds (its ``record`` as last written or listed)."""

    record: LeaseRecord
    renewed_at: float  # monotonic send time of the last successful write
    handover: str | None = None  # release reason once a handover started
    step: str = "hold"  # hold | drain (on_release running) | release | expire


class LeaseHoldings:
    """Held Leases and the writes that keep them; see the module docstring."""

    store: LeaseStore
    agent_id: str
    incarnation: str
    lease_duration: float
    safety_margin: float
    call_timeout: float
    on_acquired: Callback
    on_release: Callback
    on_lost: Callback
    _clock: Callable[[], float]
    _executor: ThreadPoolExecutor
    _held: dict[str, _Held]
    _tasks: set[asyncio.Task[None]]

    def nudge(self) -> None:  # pragma: no cover - DeviceOwnership defines it
        raise NotImplementedError

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await call_in_thread(self._executor, self.call_timeout, fn, *args)

    async def _renew(self, device: str, held: _Held) -> None:
        sent = self._clock()
        try:
            renewed = await self._io(self.store.update, held.record.renewed())
        except Exception as exc:
            log.warning("agent %s: renewal of %s failed: %r", self.agent_id, device, exc)
            return
        if renewed is not None and self._held.get(device) is held:
            held.record, held.renewed_at = renewed, sent
        # None (409/404): the list below tells whether it is still ours

    async def _drop_overdue(self) -> None:
        now = self._clock()
        for device, held in list(self._held.items()):
            if now < held.renewed_at + self.lease_duration - self.safety_margin:
                continue
            del self._held[device]
            if held.step in ("hold", "drain"):
                await self._lose(device, "overdue")

    async def _lose(self, device: str, reason: str) -> None:
        metrics.LEASE_LOSSES.labels(kind=KIND_DEVICE, reason=reason).inc()
        log.warning("agent %s: lost device %s (%s)", self.agent_id, device, reason)
        try:
            await call_back(self.on_lost, device, reason)
        except Exception:
            log.exception("agent %s: on_lost(%s) failed", self.agent_id, device)

    async def _check_held(self, leases: Mapping[str, LeaseRecord]) -> None:
        """Compare what we believe we hold with the list (taken after our writes)."""
        for device, held in list(self._held.items()):
            record = leases.get(device)
            if record is not None and record.held_by(self.agent_id, self.incarnation):
                held.record = record  # maybe a later write of ours whose answer we missed
                continue
            del self._held[device]
            if held.step in ("hold", "drain"):
                await self._lose(device, "deleted" if record is None else "taken")

    def _start_handover(self, device: str, held: _Held, reason: str) -> None:
        """``on_release`` in a task (renewals go on meanwhile), then the release is due."""
        log.info("agent %s: handing over %s (%s)", self.agent_id, device, reason)
        held.handover, held.step = reason, "drain"

        async def hand_over() -> None:
            try:
                await call_back(self.on_release, device)
                step = "release"
            except Exception:
                log.exception(
                    "agent %s: on_release(%s) failed; lease left to expire", self.agent_id, device
                )
                step = "expire"
            if self._held.get(device) is held:
                held.step = step
                self.nudge()

        task = asyncio.get_running_loop().create_task(hand_over())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_release(self, device: str, held: _Held, reason: str) -> None:
        try:
            released = await self._io(self.store.release, held.record, self.agent_id, reason)
        except Exception as exc:
            log.warning("agent %s: release of %s failed: %r", self.agent_id, device, exc)
            return
        if released is not None and self._held.get(device) is held:
            del self._held[device]
            metrics.LEASE_HANDOVERS.labels(reason=reason).inc()
            log.info("agent %s: released %s (%s)", self.agent_id, device, reason)

    async def _acquire(self, device: str, record: LeaseRecord | None) -> None:
        transfer = transfer_for(record, self.agent_id, self.incarnation)
        if record is None:
            labels = our_labels(KIND_DEVICE)
            record = LeaseRecord(
                device_lease_name(device), labels=labels, annotations={DEVICE_ANNOTATION: device}
            )
        mine = record.acquired(self.agent_id, self.incarnation, self.lease_duration)
        write = self.store.update if record.resource_version else self.store.create
        sent = self._clock()
        try:
            taken = await self._io(write, mine)
        except Exception as exc:
            log.warning("agent %s: taking %s failed: %r", self.agent_id, device, exc)
            return
        if taken is None:
            return  # somebody was faster; the next list tells who
        self._held[device] = _Held(taken, sent)
        metrics.LEASE_ACQUISITIONS.labels(kind=KIND_DEVICE, reason=transfer.reason).inc()
        log.info("device %s: %s (fence %d)", device, transfer.message, taken.transitions)
        try:
            await call_back(self.on_acquired, device, taken.transitions, transfer)
        except Exception:
            log.exception("agent %s: on_acquired(%s) failed", self.agent_id, device)
