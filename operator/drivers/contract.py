"""The driver contract, version 1: what a vendor implements to put load balancers on its devices.

Modelled on octavia-lib's ``provider_base``: one abstract class, one documented method per
operation, each saying what it raises. A driver receives the driver data model
(:mod:`lbaas.drivers.model`), never the API's objects, and declares what it can do
(:mod:`lbaas.drivers.capabilities`).

Drivers are declarative and idempotent: ``apply`` receives the whole desired tree of one load
balancer and makes the device match it, however many times it is called and whatever the
device held before (after a crash, a restart, or a half-done earlier call). That is what makes
the operator restart-safe without bookkeeping of its own.

Drivers are synchronous. The operator calls them from a thread pool with a per-call deadline
(:mod:`lbaas.drivers.deadline`), so a driver may block on the network; it must be safe to call
for *different* devices from several threads at once. Calls for the *same* device are
serialised by the operator, and only the agent holding the device's Lease makes them.

Register a driver as an entry point of group ``lbaas.drivers``::

    [project.entry-points."lbaas.drivers"]
    myvendor = "myvendor_lbaas:MyVendorDriver"

``lbaas-conformance --driver myvendor --device-config device.yaml`` then tells whether it keeps
this contract (see ``docs/drivers.md``). The toolkit (:mod:`lbaas.drivers.toolkit`) has the
parts most drivers need: atomic, fenced state files, a supervised data-plane process with a
death watch, pacing of batches under the deadline.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer, MemberStatus

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class DeviceHandle:
    """A device as a driver sees it.

    ``config`` is the Device's ``spec.config`` (checked by ``validate_config``), ``driver`` the
    name it was registered under. ``owner`` names the agent making the call and ``fence`` is a
    number that grows every time the device changes owner: a driver that can store a number on
    the device refuses calls with a lower fence than it has seen (``StaleOwnerError``), which
    makes a paused former owner harmless (``lbaas.drivers.toolkit.fence``). Credentials (the
    data of the Device's ``credentialsSecretRef``) never appear in ``repr``.
    """

    name: str
    driver: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    owner: str = ""
    fence: int = 0


@dataclass(frozen=True)
class ProbeResult:
    ready: bool
    message: str = ""


@dataclass(frozen=True)
class Drift:
    """One way a device differs from what it should serve, found by ``verify``.

    ``kind`` is CamelCase (``ConfigChanged``, ``RuntimeChanged``, ``Missing``...); ``message``
    says what was found, for the ``DriftRepaired`` Event.
    """

    kind: str
    message: str


@dataclass(frozen=True)
class TrafficStats:
    """Counters of one listener, pool or member since the data plane started (monotonic, except
    after a restart of the data plane, which ``restarts`` counts)."""

    requests: int = 0
    """HTTP requests, or connections for TCP/UDP."""
    responses: Mapping[str, int] = field(default_factory=dict)
    """By class: ``1xx`` ... ``5xx``, ``other`` (HTTP only)."""
    bytes_in: int = 0
    bytes_out: int = 0
    current_sessions: int = 0
    connection_errors: int = 0
    response_time_ms: float | None = None
    """Average over the device's recent requests, where it knows it."""
    restarts: int = 0
    """How often the device's counters started again from zero so far (a reload or restart
    of the data plane), as the driver knows it: the exporter keeps counters monotonic across
    them (it also treats any counter that went down as a restart)."""


@dataclass(frozen=True)
class LoadBalancerStats:
    listeners: Mapping[str, TrafficStats] = field(default_factory=dict)
    pools: Mapping[str, TrafficStats] = field(default_factory=dict)
    members: Mapping[str, TrafficStats] = field(default_factory=dict)


Statuses = Mapping[str, MemberStatus]
"""Member name → operating status."""


class Driver(abc.ABC):
    """Base of every driver (contract version 1).

    One instance serves every Device that names the driver; per-device state, if any, must be
    keyed by ``device.name``. Every method is called from a worker thread, never for the same
    device from two threads at once, and only by the agent that owns the device. Errors a user
    should see are raised as :class:`~lbaas.drivers.errors.DriverError`; anything else a method
    raises is reported as a retryable ``DriverError`` with the exception's text.
    """

    contract_version: ClassVar[int] = CONTRACT_VERSION

    features: ClassVar[frozenset[str]] = frozenset({"protocol.tcp", "method.round-robin"})
    """What the driver supports, from :data:`lbaas.drivers.capabilities.FEATURES`. The
    scheduler never gives a device a tree that asks for anything else, and the core refuses
    such a tree with ``Unsupported`` (naming the feature) instead of calling ``apply``."""

    def capabilities(self, config: Mapping[str, Any]) -> frozenset[str]:
        """The features a device with this ``spec.config`` supports (``features`` by default;
        override when they depend on the device: a firmware version, an optional module).

        Pure and cheap (the scheduler asks per device and VIP); never contacts the device.
        """
        return self.features

    def validate_config(self, config: Mapping[str, Any]) -> None:  # noqa: B027
        """Check a Device's ``spec.config`` before the device is used. Must not contact it.

        :raises DriverError: (non-retryable, reason ``InvalidConfig``) the config is invalid;
            the Device turns Error with this message until its spec changes.
        """

    def supports(self, lb: LoadBalancer, config: Mapping[str, Any]) -> str | None:
        """Why this driver cannot serve ``lb`` beyond what capabilities say (a name too long
        for the device, a value it cannot write), or None. Pure, cheap, never raises.

        The scheduler and the core call it after the capability check; most drivers need not
        override it.
        """
        return None

    @abc.abstractmethod
    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """Make ``device`` serve ``lb`` exactly as described: create, update or remove parts.

        Idempotent: applying the same tree twice leaves the device as after once, and applying
        a tree replaces whatever the device held for that key before. A tree the device refuses
        must leave every other load balancer on the device serving as before.

        :raises UnsupportedError: the device cannot express ``lb``; not retried.
        :raises DriverError: retryable (device unreachable, busy, timed out): retried with
            backoff; non-retryable (the device refuses this configuration, e.g. reason
            ``AddressInUse``, ``AddressNotAvailable``, ``InvalidConfiguration``,
            ``CertificateInvalid``): reported, retried only when the tree or the device changes.
        :raises StaleOwnerError: the device has seen a newer owner.
        """

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        """``apply`` of several trees of one device at once: the outcome per key.

        The operator sends what is waiting for one device as one call (a cold start, a new
        owner). Each tree succeeds or fails on its own: one refused tree must not fail the
        others (blast radius of one). The default calls ``apply`` per tree; a driver whose
        apply costs per device (a reload) should override it to pay that once. A tree the call
        had no time for gets ``errors.deferred()`` (reason ``Deferred``): the operator sends it
        again at once, in the next call, and shows no error for it.

        :raises DriverError: only when none could be applied (device unreachable...): every
            tree of the batch gets this error.
        """
        outcome: dict[str, DriverError | None] = {}
        for lb in lbs:
            try:
                self.apply(device, lb)
                outcome[lb.key] = None
            except DriverError as exc:
                if exc.reason == Reason.STALE_OWNER:
                    raise
                outcome[lb.key] = exc
        return outcome

    @abc.abstractmethod
    def delete(self, device: DeviceHandle, key: str) -> None:
        """Remove everything the device holds for the load balancer ``key`` (namespace/name).
        Deleting what is absent succeeds.

        :raises DriverError: as ``apply``; a VIP whose deletion keeps failing is released
            after ``deleteAttempts`` with a ``DeleteAbandoned`` Event (``orphans`` finds it).
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

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        """Observed health of the members of ``lbs``, by load balancer key, then member name.

        The operator reads health once per device per interval, for every tree it applied.
        A member left out is reported from its spec: NO_MONITOR (OFFLINE when admin-down,
        DRAINING at weight 0); a tree left out has its monitored members UNKNOWN. The default
        knows nothing (declare ``ops.member-status`` when overriding it).

        :raises DriverError: the device cannot tell now (every monitored member is UNKNOWN,
            never ONLINE).
        """
        return {}

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        """What differs between what ``device`` serves for ``lb`` and ``lb`` itself.

        Called for every tree once per resync interval. ``[]`` = in sync; a non-empty list makes
        the operator apply ``lb`` again and post a ``DriftRepaired`` Event naming the drift.
        The default, None, means "cannot tell cheaply": the operator then re-applies.

        :raises DriverError: the device cannot be read now (retried at the next resync).
        """
        return None

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        """Keys of load balancers the device holds that are not in ``expected`` (left behind by
        a deleted VIP whose cleanup was abandoned, a failover, or added behind the operator's
        back). The operator deletes each and posts a ``DriftRepaired`` Event. Called once per
        resync interval, only while the operator's view of the cluster is complete. The
        default finds none.

        :raises DriverError: the device cannot be read now.
        """
        return []

    def traffic_stats(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, LoadBalancerStats]:
        """The data plane's own counters for ``lbs``, by key (declare ``ops.traffic-stats``).

        :raises DriverError: the device cannot be read now.
        """
        return {}

    def watch(self, device: DeviceHandle, changed: Callable[[], None]) -> Callable[[], None]:
        """Start noticing, without the probe timer, that the device changed state.

        ``changed`` (thread-safe) makes the operator probe the device at once: a driver that
        supervises a process calls it the moment the process dies, and ``probe`` restarts it.
        Returns a function that stops watching. The default watches nothing.
        """
        return lambda: None

    def select_device(
        self, lb: LoadBalancer, candidates: Sequence[DeviceHandle]
    ) -> DeviceHandle | None:
        """Choose a device for a new tree among eligible ``candidates`` (all of this driver).

        Called by the controller, off any device's lease: must not change a device. Return
        None to let the operator's scheduler choose (least loaded). Exceptions are logged and
        count as None.
        """
        return None

    def close(self) -> None:  # noqa: B027
        """Release what the driver holds (connections, threads) when the operator stops.

        Must not stop the data plane: a restarted operator picks up where this one was.
        """
