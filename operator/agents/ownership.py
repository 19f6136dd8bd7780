"""An agent's Devices: one Lease per Device, a fair share each, handed over without overlap.

How the pieces fit: :class:`DeviceOwnership` runs in every agent. Each tick (every renew
period, and at once after :meth:`~DeviceOwnership.nudge`) it renews its presence Lease and the
Leases of its Devices, lists all our Leases in one call (observing them with an
:class:`~lbaas.leases.Observer`), runs :func:`~lbaas.agents.assignment.assign` on
(Devices, live agents, current holders) and acts on its own part: it takes free or expired
Leases of Devices assigned to it (``leaseTransitions`` + 1: the fence) and hands over those
assigned elsewhere: ``on_release`` first (the runtime stops starting calls and waits for those
running), then the release of the Lease. The runtime asks :meth:`~DeviceOwnership.may_start`
before every driver call.

**Why two agents' driver calls on one Device never overlap.** Let A hold the Lease, r be
the monotonic time at which A *sent* its last successful renewal (or acquisition), and D the
lease duration. ``may_start`` gives a call starting at t the deadline t + driver_timeout only
if t + driver_timeout <= r + D - safety_margin, and the driver returns by its deadline: every
call of A ends before r + D - margin. B takes the Lease over only (a) when A released it, which A
does after ``on_release`` returned, i.e. after A's calls ended and with no new call allowed,
or (b) when B saw the Lease unchanged for D on its own monotonic clock: B noted the change
no earlier than the renewal reached the server, which is after r, and B's takeover write is a
compare-and-swap that fails if A renewed since; so B's first call starts after r + D, later
than any call of A. The margin covers the rate difference of two hosts' monotonic clocks,
thread wake-ups and the driver's return after its deadline. Clock *skew* plays no part: no
time is ever compared across hosts. A process *paused* in the middle of a call (SIGSTOP, a
VM freeze) breaks "the driver returns by its deadline"; the fence (``DeviceHandle.fence``) is
what protects a device from such a zombie.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from lbaas import metrics
from lbaas.agents.assignment import Selector, assign
from lbaas.agents.calls import TRANSIENT, Callback, wait_any
from lbaas.agents.holdings import LeaseHoldings, _Held
from lbaas.agents.presence import Presence
from lbaas.agents.transfer import Transfer, TransferReason
from lbaas.leases import (
    AGENTS_AND_DEVICES_SELECTOR,
    KIND_AGENT,
    KIND_DEVICE,
    LeaseRecord,
    LeaseStore,
    Observer,
    new_incarnation,
)

__all__ = ["DeviceOwnership", "Transfer", "TransferReason"]

log = logging.getLogger(__name__)


class DeviceOwnership(LeaseHoldings):
    """Takes, keeps and hands over this agent's Devices. See the module docstring.

    :param store: Lease access (its ``request_timeout`` bounds every call).
    :param agent_id: this agent's id (``holderIdentity``, ``status.agent``).
    :param labels: this agent's labels, matched by Devices' ``spec.agentSelector``.
    :param devices: returns the Devices this agent may see now: name → agentSelector.
    :param on_acquired: ``(device, fence, transfer)``, sync or async, prompt: a Device is
        ours; the runtime re-applies its trees with ``DeviceHandle.fence = fence`` and posts
        ``transfer.message`` as an Event.
    :param on_release: ``async (device)``: stop starting calls for the Device and return
        once those running have returned; the Lease is released after it. If it raises, the
        Lease is left to expire instead (safe: calls are bounded by their deadlines).
    :param on_lost: ``(device, reason)``, prompt: the Lease was lost without a handover
        (renewals failed: ``overdue``; ``taken`` by another; ``deleted``); stop at once.
    :param safety_margin: seconds by which every call ends before the Lease could expire.
    :param call_timeout: seconds one API call may take (default: the renew period).
    """

    def __init__(
        self,
        store: LeaseStore,
        agent_id: str,
        *,
        labels: Mapping[str, str],
        devices: Callable[[], Mapping[str, Selector | None]],
        on_acquired: Callback,
        on_release: Callback,
        on_lost: Callback,
        lease_duration: float,
        renew_period: float,
        driver_timeout: float,
        safety_margin: float = 0.5,
        call_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if driver_timeout + renew_period + safety_margin >= lease_duration:
            raise ValueError("driver_timeout + renew_period + safety_margin must be < lease")
        self.store, self.agent_id, self.labels = store, agent_id, dict(labels)
        self.incarnation = new_incarnation()
        self._devices = devices
        self.on_acquired, self.on_release, self.on_lost = on_acquired, on_release, on_lost
        self.lease_duration, self.renew_period = lease_duration, renew_period
        self.driver_timeout, self.safety_margin = driver_timeout, safety_margin
        self.call_timeout = call_timeout or renew_period
        self._clock = clock
        self._observer = Observer()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lbaas-leases")
        self._held: dict[str, _Held] = {}
        self._presence = Presence(store, agent_id, self.incarnation, labels, lease_duration)
        self._tasks: set[asyncio.Task[None]] = set()
        self._nudged, self._stop, self._exited = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._exited.set()  # not running
        self._draining = False
        self._wake_at = float("inf")
        # Agents started together see each other only from their second list: taking
        # Devices on the first would make the first one to list take everything.
        self._acquire_after = float("inf")
        #: The last assignment computed and the agents seen live then (for status and tests).
        self.assignment: dict[str, str | None] = {}
        self.live_agents: dict[str, dict[str, str]] = {}

    # ---- what the runtime calls -------------------------------------------------------------

    def may_start(self, device: str) -> float | None:
        """Deadline (monotonic) for a driver call on ``device`` starting now, or None.

        None unless the Lease is held, not being handed over, and stays valid for the whole
        call with the safety margin, counted from the send time of its last renewal.
        """
        held = self._held.get(device)
        if held is None or held.step != "hold" or self._draining:
            return None
        deadline = self._clock() + self.driver_timeout
        if deadline > held.renewed_at + self.lease_duration - self.safety_margin:
            return None
        return deadline

    def fence(self, device: str) -> int | None:
        """The fence (``leaseTransitions``) of a Device held now, None if not held."""
        held = self._held.get(device)
        return None if held is None else held.record.transitions

    def owned(self) -> set[str]:
        """Devices whose Lease this process holds (including those being handed over)."""
        return set(self._held)

    def nudge(self) -> None:
        """Run a tick soon (call it on Device or Lease changes)."""
        self._nudged.set()

    async def run(self) -> None:
        """Tick until :meth:`stop`. Cancelled, it leaves every Lease to expire (a crash)."""
        next_renewal = self._clock()
        self._acquire_after = next_renewal + self.renew_period * 0.9
        self._exited.clear()
        try:
            while not self._stop.is_set():
                started = self._clock()
                renew = started >= next_renewal
                if renew:
                    next_renewal = started + self.renew_period
                self._nudged.clear()
                try:
                    await self._tick(renew)
                except TRANSIENT as exc:
                    log.warning("agent %s: ownership tick failed: %r", self.agent_id, exc)
                except Exception:
                    log.exception("agent %s: ownership tick failed", self.agent_id)
                wake = min(next_renewal, self._wake_at)
                await wait_any((self._nudged, self._stop), wake - self._clock())
                # Nudges are coalesced: at most ten ticks per renew period.
                await wait_any((self._stop,), started + self.renew_period / 10 - self._clock())
        finally:
            self._exited.set()
            if not self._draining:  # cancelled: a crash, as far as others can tell
                for task in list(self._tasks):
                    task.cancel()

    async def stop(self) -> None:
        """Graceful shutdown (SIGTERM): hand every Device over, then leave.

        ``may_start`` says None for every Device from the first line on. Stops the loop
        (waits for :meth:`run` to return), releases the presence Lease so that others stop
        counting on this agent, awaits ``on_release`` for every Device (and the handovers
        under way), then releases their Leases: others take them at once. Nothing is renewed
        meanwhile, and need not be: running calls end before the Leases could expire (see
        the module docstring).
        """
        self._draining = True
        self._stop.set()
        await self._exited.wait()
        presence = asyncio.ensure_future(self._presence_call(self._presence.release))
        for device, held in list(self._held.items()):
            if held.step == "hold":
                self._start_handover(device, held, "stopped")
        await asyncio.gather(*self._tasks, presence, return_exceptions=True)
        releases = [(d, h) for d, h in self._held.items() if h.step == "release"]
        await asyncio.gather(*(self._write_release(d, h, h.handover or "") for d, h in releases))
        self._held.clear()
        metrics.AGENT_DEVICES.labels(agent=self.agent_id).set(0)
        self._executor.shutdown(wait=False)

    # ---- one tick -----------------------------------------------------------------------

    async def _tick(self, renew: bool) -> None:
        if renew:
            await asyncio.gather(
                self._presence_call(self._presence.renew),
                *(
                    self._renew(d, h)
                    for d, h in list(self._held.items())
                    if h.step in ("hold", "drain")
                ),
            )
        await self._drop_overdue()
        records, seen_at = await self._io(self._list)
        self._observer.observe_all(records, seen_at)
        presences = [r for r in records if r.kind == KIND_AGENT and r.holder]
        leases = {r.device: r for r in records if r.kind == KIND_DEVICE and r.device}
        self.live_agents = {
            r.holder: r.agent_labels()
            for r in presences
            if r.holder and not self._observer.is_free(r, self.lease_duration, seen_at)
        }
        self.live_agents[self.agent_id] = self.labels
        try:
            devices = dict(self._devices())
        except Exception:
            log.exception("agent %s: reading Devices failed", self.agent_id)
            return
        owners = {d: r.holder for d, r in leases.items() if r.holder}
        self.assignment = assign(devices, self.live_agents, owners)
        await self._check_held(leases)
        await self._act(devices, leases, seen_at)
        metrics.AGENT_DEVICES.labels(agent=self.agent_id).set(len(self._held))

    def _list(self) -> tuple[list[LeaseRecord], float]:
        records = self.store.list(AGENTS_AND_DEVICES_SELECTOR)
        return records, self._clock()  # taken after the answer: never before the change

    async def _presence_call(self, method: Callable[[], object]) -> None:
        try:
            await self._io(method)
        except Exception as exc:
            log.warning("agent %s: presence %s failed: %r", self.agent_id, method.__name__, exc)

    async def _act(
        self, devices: Mapping[str, Selector | None], leases: Mapping[str, LeaseRecord], now: float
    ) -> None:
        writes: list[Awaitable[None]] = []
        self._wake_at = float("inf")
        for device, held in list(self._held.items()):
            target = self.assignment.get(device)
            if held.step == "release":
                writes.append(self._write_release(device, held, held.handover or "balance"))
            elif held.step == "hold" and (device not in devices or target != self.agent_id):
                selector = devices.get(device)
                if device not in devices:
                    reason = "gone"
                elif selector is None or selector.matches(dict(self.labels)):
                    reason = "balance"
                else:
                    reason = "ineligible"
                self._start_handover(device, held, reason)
        if self._draining or now < self._acquire_after:
            await asyncio.gather(*writes)
            return
        for device, target in self.assignment.items():
            record = leases.get(device)
            if device in self._held:
                continue
            mine = record is not None and record.held_by(self.agent_id, self.incarnation)
            if target != self.agent_id:
                if record is not None and mine:  # a write we had given up on landed after all
                    writes.append(self._write_release(device, _Held(record, now), "balance"))
                continue
            free_at = now  # absent, or ours: take (or resume) it now
            if record is not None and not mine:
                free_at = self._observer.expires_at(record, self.lease_duration)
            if now >= free_at:
                writes.append(self._acquire(device, record))
            else:
                self._wake_at = min(self._wake_at, free_at)
        await asyncio.gather(*writes)
