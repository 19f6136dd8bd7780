"""The driver contract version 0 (deprecated): drivers that receive the API's own models.

Kept so that a driver written against 0.1 (subclassing ``lbaas.drivers.base.Driver`` and
receiving this module's ``LoadBalancer``, built from ``lbaas.api`` specs) keeps loading and
working: the registry wraps it in :class:`lbaas.drivers.legacy.LegacyDriver`, which converts
the driver data model back to these classes, and logs a deprecation warning once. The shim
serves what contract 0 could express (one listener, one pool; no TLS termination, no L7,
no UDP) and stays for the 0.2 releases; it is removed in 0.3.0. New drivers implement
:mod:`lbaas.drivers.contract` (see ``docs/drivers.md``).

The errors and the call deadline are shared with contract 1 and re-exported here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbaas.api.device import DeviceSpec
from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberOperatingStatus, MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec
from lbaas.drivers.contract import Drift, ProbeResult
from lbaas.drivers.deadline import call_deadline, deadline_scope, remaining
from lbaas.drivers.errors import DriverError, StaleOwnerError, UnsupportedError

__all__ = [
    "DeviceHandle",
    "Drift",
    "Driver",
    "DriverError",
    "LoadBalancer",
    "MemberEntry",
    "ProbeResult",
    "StaleOwnerError",
    "Statuses",
    "UnsupportedError",
    "call_deadline",
    "deadline_scope",
    "remaining",
]


@dataclass(frozen=True)
class DeviceHandle:
    """A device as a driver sees it: its name, spec, labels and credentials.

    ``owner`` names the agent making the call and ``fence`` is a number that grows every time
    the device changes owner (the Lease's ``leaseTransitions``). A driver that can store a
    number on the device may refuse calls with a lower fence than it has seen
    (``StaleOwnerError``): that makes a paused former owner harmless.
    Credentials never appear in ``repr`` (and so in no log line or message).
    """

    name: str
    spec: DeviceSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    owner: str = ""
    fence: int = 0

    @property
    def config(self) -> dict[str, Any]:
        return self.spec.config


@dataclass(frozen=True)
class MemberEntry:
    name: str
    spec: MemberSpec


@dataclass(frozen=True)
class LoadBalancer:
    """The desired state of one VIP: the VIP, its pool, members and monitor.

    ``key`` is ``namespace/name`` of the VIP, unique in the cluster; ``address`` is the
    effective address (the spec's, or the one allocated from the device's addressPool).
    Members and the monitor are those not being deleted and allowed by the device's member
    networks; ``pool`` is None while the VIP has no pool, in which case the device should
    accept connections and have no backends.
    """

    namespace: str
    name: str
    address: str
    spec: VIPSpec
    pool_name: str | None = None
    pool: PoolSpec | None = None
    members: Sequence[MemberEntry] = ()
    monitor_name: str | None = None
    monitor: HealthMonitorSpec | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


Statuses = Mapping[str, MemberOperatingStatus]
"""Member name → operating status."""


class Driver(abc.ABC):
    """Base of a contract-0 driver (deprecated: see the module docstring).

    One instance serves every Device that names the driver; per-device state, if any, must be
    keyed by ``device.name``. Every method below is called from a worker thread, never for
    the same device from two threads at once, and only by the agent that owns the device.
    Errors a user should see are raised as :class:`DriverError`; anything else a method
    raises is reported as a retryable ``DriverError`` with the exception's text.
    """

    #: Protocols this driver can serve; the scheduler skips devices whose driver can't.
    supported_protocols: frozenset[str] = frozenset({"TCP", "HTTP", "HTTPS"})

    def validate_config(self, config: Mapping[str, Any]) -> None:  # noqa: B027
        """Check a Device's ``spec.config`` before the device is used.

        Called when a Device is created or changed. Must not contact the device.

        :raises DriverError: (non-retryable, reason ``InvalidConfig``) the config is invalid;
            the Device turns Error with this message until its spec changes.
        """

    def supports(self, lb: LoadBalancer) -> str | None:
        """Why this driver cannot serve ``lb``, or None if it can (used by the scheduler).

        Pure and cheap: no device access. Never raises.
        """
        if lb.spec.protocol not in self.supported_protocols:
            return f"protocol {lb.spec.protocol} not supported by this driver"
        return None

    @abc.abstractmethod
    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """Make ``device`` serve ``lb`` exactly as described: create, update or remove parts.

        Idempotent: applying the same tree twice leaves the device as after once, and applying
        a tree replaces whatever the device held for that VIP before. A VIP the device refuses
        must leave every other VIP on the device serving as before.

        :raises UnsupportedError: the device cannot express ``lb``; not retried.
        :raises DriverError: retryable (device unreachable, busy, timed out): retried with
            backoff; non-retryable (the device refuses this configuration, e.g. reason
            ``AddressInUse``, ``AddressNotAvailable``, ``InvalidConfiguration``): reported,
            retried only when the tree or the device changes.
        :raises StaleOwnerError: the device has seen a newer owner.
        """

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        """``apply`` of several VIPs of one device at once: the outcome per VIP key.

        The operator sends what is waiting for one device as one call (a cold start, a new
        owner). Each VIP succeeds or fails on its own: one refused VIP must not fail the others
        (blast radius of one). The default calls ``apply`` per VIP; a driver whose apply costs
        per device (HAProxy: a reload) should override it to pay that once. A VIP the call had
        no time for (its deadline) gets a retryable error with reason ``Deferred``: the
        operator sends it again at once, in the next call, and shows no error for it.

        :raises DriverError: only when none could be applied (device unreachable...): every
            VIP of the batch gets this error.
        """
        outcome: dict[str, DriverError | None] = {}
        for lb in lbs:
            try:
                self.apply(device, lb)
                outcome[lb.key] = None
            except DriverError as exc:
                outcome[lb.key] = exc
        return outcome

    @abc.abstractmethod
    def delete(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """Remove everything the device holds for ``lb``. Deleting what is absent succeeds.

        :raises DriverError: as ``apply``; a VIP whose deletion keeps failing is released
            after ``deleteAttempts`` with a ``DeleteAbandoned`` Event (``orphans`` finds it
            later).
        """

    @abc.abstractmethod
    def probe(self, device: DeviceHandle) -> ProbeResult:
        """Report whether the device can take work now. Called periodically; keep it cheap.

        A device that does not answer, or answers that it is not ready, is a *result*:
        ``ProbeResult(False, why)`` (the Device turns NotReady and its VIPs say so). A driver
        that manages the device's process may restart it here.

        :raises DriverError: only when the device can never work as configured
            (non-retryable: the Device turns Error); a retryable one counts as not ready.
        """

    def member_status(self, device: DeviceHandle, lb: LoadBalancer) -> Statuses:
        """Observed health of ``lb``'s members by member name, where the device knows it.

        Members left out are reported as NO_MONITOR (or OFFLINE when admin-down, DRAINING
        at weight 0).

        :raises DriverError: the device cannot tell now: members with a monitor are then
            reported UNKNOWN, never ONLINE.
        """
        return {}

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        """``member_status`` of many VIPs of one device at once, by VIP key.

        The operator reads health once per device per interval through this method; the
        default calls ``member_status`` per VIP. Override it when one device call can answer
        for all (HAProxy: one ``show stat``). A VIP left out is reported UNKNOWN.

        :raises DriverError: the device cannot tell now (every VIP of it is UNKNOWN).
        """
        return {lb.key: self.member_status(device, lb) for lb in lbs}

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        """What differs between what ``device`` serves for ``lb`` and ``lb`` itself.

        Called for every VIP once per resync interval. ``[]`` = in sync; a non-empty list makes
        the operator apply ``lb`` again and post a ``DriftRepaired`` Event naming the drift.
        The default, None, means "cannot tell cheaply": the operator then re-applies.

        :raises DriverError: the device cannot be read now (retried at the next resync).
        """
        return None

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[LoadBalancer]:
        """VIPs the device holds whose key is not in ``expected`` (left behind by a deleted VIP
        whose cleanup was abandoned, or added behind the operator's back).

        The operator deletes each with ``delete`` and posts a ``DriftRepaired`` Event. Called
        once per resync interval, only while the operator's view of the cluster is complete.
        The default finds none.

        :raises DriverError: the device cannot be read now.
        """
        return []

    def watch(self, device: DeviceHandle, changed: Callable[[], None]) -> Callable[[], None]:
        """Start noticing, without polling the probe timer, that the device changed state.

        ``changed`` (thread-safe) makes the operator probe the device at once: a driver that
        supervises a process (HAProxy) calls it the moment the process dies, and ``probe``
        restarts it. Returns a function that stops watching. The default watches nothing.
        """
        return lambda: None

    def select_device(
        self, lb: LoadBalancer, candidates: Sequence[DeviceHandle]
    ) -> DeviceHandle | None:
        """Choose a device for a new VIP among eligible ``candidates`` (all of this driver).

        Called by the controller, off any device's lease: must not change a device. Return
        None to let the operator's scheduler choose (least loaded). Exceptions are logged and
        count as None.
        """
        return None

    def close(self) -> None:  # noqa: B027
        """Release what the driver holds (connections, threads) when the operator stops.

        Must not stop the data plane: a restarted operator picks up where this one was.
        """
