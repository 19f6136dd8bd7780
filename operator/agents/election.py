"""One controller leads at a time: leader election on the ``lbaas-controller`` Lease.

The same protocol as client-go's ``leaderelection``, in asyncio over blocking calls:

- every ``renew_period`` each candidate reads the Lease (a leader renews it directly, by
  compare-and-swap on the resourceVersion it wrote last);
- a candidate takes the Lease when it is released (no holder) or when its :class:`Observer`
  saw it unchanged for the lease duration (never by comparing ``renewTime`` with a clock);
- a leader may act until ``valid_until()`` = send time of its last successful renewal +
  ``renew_deadline``, with ``renew_deadline < lease_duration``. Others take over no earlier
  than that renewal's arrival + ``lease_duration`` (on their own monotonic clocks), so the
  old leader has stopped acting ``lease_duration - renew_deadline`` seconds before anyone
  else starts. Callers bound their own API writes by ``valid_until()``.
- :meth:`LeaderElector.release` (on SIGTERM) stops leading, then clears the holder: a
  standby takes over at its next attempt, within one renew period.

The holder is ``identity`` (for humans: the pod name) plus a random incarnation per process
(see :mod:`lbaas.leases`): a restarted controller waits for its predecessor's Lease to
expire like any standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lbaas import metrics
from lbaas.agents.calls import Callback, call_back, call_in_thread
from lbaas.leases import (
    KIND_CONTROLLER,
    LEADER_LEASE,
    LeaseRecord,
    LeaseStore,
    Observer,
    new_incarnation,
    our_labels,
)

log = logging.getLogger(__name__)


class LeaderElector:
    """Run with ``await elector.run()`` (a task); stop with ``await elector.release()``.

    :param store: Lease access in the lease namespace.
    :param identity: this process's name in ``holderIdentity`` (e.g. the pod name).
    :param lease_duration: seconds a silent leader keeps the Lease for others.
    :param renew_period: seconds between attempts (acquire or renew).
    :param renew_deadline: seconds after the send time of its last successful renewal at
        which a leader stops; default two thirds of ``lease_duration`` (client-go's 10/15),
        or halfway between the renew period and the lease duration if that is more.
        Must lie strictly between ``renew_period`` and ``lease_duration``.
    :param on_started_leading: called (sync or async) when this process starts leading;
        must return promptly (start long work in a task).
    :param on_stopped_leading: called when it stops (renewal deadline missed, Lease taken,
        release, cancellation); from then on the caller must not act as leader.
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        lease_duration: float,
        renew_period: float,
        renew_deadline: float | None = None,
        name: str = LEADER_LEASE,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if renew_deadline is None:
            renew_deadline = max(lease_duration * 2 / 3, (renew_period + lease_duration) / 2)
        if not 0 < renew_period < renew_deadline < lease_duration:
            raise ValueError(
                f"need 0 < renew period ({renew_period:g}s) < renew deadline"
                f" ({renew_deadline:g}s) < lease duration ({lease_duration:g}s)"
            )
        self.store = store
        self.identity = identity
        self.incarnation = new_incarnation()
        self.name = name
        self.lease_duration = lease_duration
        self.renew_period = renew_period
        self.renew_deadline = renew_deadline
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._clock = clock
        self._observer = Observer()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lbaas-election")
        self._record: LeaseRecord | None = None
        self._leading = False
        self._valid_until = 0.0
        self._stop = asyncio.Event()
        self._running = False
        self._exited = asyncio.Event()

    # ---- what the runtime reads ---------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this process leads and its renewal deadline has not passed."""
        return self._leading and self._clock() < self._valid_until

    def valid_until(self) -> float:
        """Monotonic time until which this process may act as leader (0.0: not leading)."""
        return self._valid_until if self._leading else 0.0

    @property
    def leader(self) -> str | None:
        """The holder of the Lease at the last read (for logs and status), None if none."""
        return self._record.holder if self._record is not None else None

    # ---- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Acquire or renew every renew period until :meth:`release` or cancellation.

        Cancelled without ``release`` (a crash, as far as others can tell), the Lease is
        left as it is: a standby takes over once it stayed unchanged for the lease duration.
        """
        self._running = True
        self._exited.clear()
        try:
            while not self._stop.is_set():
                started = self._clock()
                await self._attempt()
                wake = started + self.renew_period
                if self._leading:
                    wake = min(wake, self._valid_until)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(0.0, wake - self._clock()))
        finally:
            self._running = False
            self._exited.set()
            if self._leading:
                await self._stop_leading("released" if self._stop.is_set() else "cancelled")

    async def _attempt(self) -> None:
        if self._leading and self._clock() >= self._valid_until:
            await self._stop_leading("overdue")
        # A leader's attempt must end by its deadline: it then knows it lost, and says so.
        timeout = self._valid_until - self._clock() if self._leading else self.renew_period
        sent = self._clock()
        try:
            record, how = await call_in_thread(
                self._executor, timeout, self._acquire_or_renew, self._record
            )
        except Exception as exc:  # API down, timeout: the deadline decides, not one error
            log.warning("leader lease %s: attempt failed: %r", self.name, exc)
            if self._leading and self._clock() >= self._valid_until:
                await self._stop_leading("overdue")
            return
        self._record = record
        if how is not None:
            self._valid_until = sent + self.renew_deadline
            if not self._leading:
                metrics.LEASE_ACQUISITIONS.labels(kind=KIND_CONTROLLER, reason=how).inc()
                log.info("leader lease %s: %s leads (%s)", self.name, self.identity, how)
                self._leading = True
                metrics.LEADER_CHANGES.labels(transition="started").inc()
                metrics.IS_LEADER.set(1)
                await call_back(self.on_started_leading)
        elif self._leading:
            await self._stop_leading("taken")

    def _acquire_or_renew(self, known: LeaseRecord | None) -> tuple[LeaseRecord | None, str | None]:
        """Blocking: the Lease as last seen, and how this process holds it now.

        ``how`` is None (not held), ``renewed``, or for an acquisition ``new`` (created),
        ``released`` (its holder let go), ``expired`` (unchanged for the lease duration) or
        ``resumed`` (held by this process already: a write whose answer we gave up on).
        """
        if known is not None and known.held_by(self.identity, self.incarnation):
            renewed = self.store.update(known.renewed())
            if renewed is not None:
                return renewed, "renewed"
        current = self.store.get(self.name)
        seen_at = self._clock()
        if current is None:
            fresh = LeaseRecord(self.name, labels=our_labels(KIND_CONTROLLER))
            mine = fresh.acquired(self.identity, self.incarnation, self.lease_duration)
            created = self.store.create(mine)
            return created, None if created is None else "new"
        self._observer.observe(current, seen_at)
        if current.held_by(self.identity, self.incarnation):
            renewed = self.store.update(current.renewed())
            return renewed or current, None if renewed is None else "resumed"
        if self._observer.is_free(current, self.lease_duration, seen_at):
            how = "expired" if current.holder else "released"
            mine = current.acquired(self.identity, self.incarnation, self.lease_duration)
            taken = self.store.update(mine)
            return taken or current, None if taken is None else how
        return current, None

    async def _stop_leading(self, reason: str) -> None:
        if not self._leading:
            return
        self._leading = False
        self._valid_until = 0.0
        if reason not in ("released", "cancelled"):
            metrics.LEASE_LOSSES.labels(kind=KIND_CONTROLLER, reason=reason).inc()
        metrics.LEADER_CHANGES.labels(transition="stopped").inc()
        metrics.IS_LEADER.set(0)
        log.info("leader lease %s: %s stopped leading (%s)", self.name, self.identity, reason)
        await call_back(self.on_stopped_leading)

    async def release(self) -> None:
        """Stop the loop, stop leading (callback first), then clear the holder.

        The order matters: others may take a released Lease at once, so the holder is
        cleared only after ``on_stopped_leading`` returned. Safe to call when not leading.
        """
        self._stop.set()
        if self._running:
            await self._exited.wait()
        was_leader = self._leading
        await self._stop_leading("released")
        record = self._record
        try:
            if record is not None and (
                was_leader or record.held_by(self.identity, self.incarnation)
            ):
                await call_in_thread(
                    self._executor, self.renew_period * 2, self._release_blocking, record
                )
        except Exception as exc:
            log.warning("leader lease %s: release failed (expires instead): %r", self.name, exc)
        finally:
            self._executor.shutdown(wait=False)

    def _release_blocking(self, record: LeaseRecord) -> None:
        released = self.store.update(record.released("released"))
        if released is None:  # a late write of ours moved the resourceVersion
            current = self.store.get(self.name)
            if current is not None and current.held_by(self.identity, self.incarnation):
                released = self.store.update(current.released("released"))
        if released is not None:
            self._record = released
            log.info("leader lease %s: released by %s", self.name, self.identity)
