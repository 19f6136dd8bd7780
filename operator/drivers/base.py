"""The driver contract: what a vendor implements to put VIPs on its devices.

Modelled on octavia-lib's ``provider_base``: one abstract class, one documented method per
operation. Drivers are declarative and idempotent: ``apply`` receives the whole desired tree of
one VIP and makes the device match it, however many times it is called and whatever the device
held before (after a crash, a restart, or a half-done earlier call). That is what makes the
operator restart-safe without bookkeeping of its own.

Drivers are synchronous. The operator calls them from a thread pool with a per-call timeout,
so a driver may block on the network; it must be safe to call for *different* devices from
several threads at once. Calls for the *same* device are serialised by the operator.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbaas.api.device import DeviceSpec
from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberOperatingStatus, MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec


class DriverError(Exception):
    """A failure the user should see.

    ``user_message`` goes to ``status.message`` and a Warning Event on the objects concerned;
    ``detail`` only to the operator's log. ``retryable`` errors are retried with backoff
    (device unreachable, busy); non-retryable ones wait until the spec or the device changes
    (the device refuses the configuration). ``reason`` is a CamelCase machine reason.
    """

    def __init__(
        self,
        user_message: str,
        *,
        detail: str = "",
        retryable: bool = True,
        reason: str = "DriverError",
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail
        self.retryable = retryable
        self.reason = reason


class UnsupportedError(DriverError):
    """The driver cannot express what the spec asks for; retrying will not help."""

    def __init__(self, user_message: str, *, detail: str = "") -> None:
        super().__init__(user_message, detail=detail, retryable=False, reason="Unsupported")


@dataclass(frozen=True)
class DeviceHandle:
    """A device as a driver sees it: its name, its spec, and the credentials from its Secret."""

    name: str
    spec: DeviceSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)

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
    Members and the monitor are those not being deleted; ``pool`` is None while the VIP has
    no pool, in which case the device should accept connections and have no backends.
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


@dataclass(frozen=True)
class ProbeResult:
    ready: bool
    message: str = ""


class Driver(abc.ABC):
    """Base of every driver. Subclass it and register it under entry-point group lbaas.drivers.

    One instance serves every Device that names the driver; per-device state, if any, must be
    keyed by ``device.name``.
    """

    #: Protocols this driver can serve; the scheduler skips devices whose driver can't.
    supported_protocols: frozenset[str] = frozenset({"TCP", "HTTP", "HTTPS"})

    def validate_config(self, config: Mapping[str, Any]) -> None:  # noqa: B027
        """Check a Device's ``spec.config``. Raise ``DriverError`` (non-retryable) if invalid.

        Called when a Device is created or changed, before the device is used.
        """

    def supports(self, lb: LoadBalancer) -> str | None:
        """Why this driver cannot serve ``lb``, or None if it can (used by the scheduler)."""
        if lb.spec.protocol not in self.supported_protocols:
            return f"protocol {lb.spec.protocol} not supported by this driver"
        return None

    @abc.abstractmethod
    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """Make ``device`` serve ``lb`` exactly as described: create, update or remove parts.

        Must be idempotent: applying the same tree twice leaves the device as after once, and
        applying a tree replaces whatever the device held for that VIP before.
        """

    @abc.abstractmethod
    def delete(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """Remove everything the device holds for ``lb``. Deleting what is absent succeeds."""

    @abc.abstractmethod
    def probe(self, device: DeviceHandle) -> ProbeResult:
        """Report whether the device can take work now. Called periodically; keep it cheap."""

    def member_status(
        self, device: DeviceHandle, lb: LoadBalancer
    ) -> Mapping[str, MemberOperatingStatus]:
        """Observed health of ``lb``'s members by member name, where the device knows it.

        Members left out are reported as NO_MONITOR (or OFFLINE when admin-down).
        """
        return {}

    def select_device(
        self, lb: LoadBalancer, candidates: Sequence[DeviceHandle]
    ) -> DeviceHandle | None:
        """Choose a device for a new VIP among eligible ``candidates`` (all of this driver).

        Return None to let the operator's scheduler choose (least loaded).
        """
        return None

    def close(self) -> None:  # noqa: B027
        """Release what the driver holds (connections, threads) when the operator stops.

        Must not stop the data plane: a restarted operator picks up where this one was.
        """
