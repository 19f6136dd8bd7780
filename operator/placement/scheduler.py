"""The scheduler: which Device a new VIP goes to, and why the others were not chosen.

Pure: the inventory comes in as ``Candidate`` values, the answer goes out as a ``Decision``.
Driver hooks (``supports``, ``select_device``) are looked up by the caller and passed in.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.api.vip import VIPSpec
from lbaas.device_index import transport
from lbaas.placement.addresses import has_free
from lbaas.placement.policy import vip_address_problem


@dataclass(frozen=True)
class Candidate:
    """A Device as the scheduler sees it."""

    name: str
    spec: DeviceSpec
    labels: Mapping[str, str]
    phase: str | None
    vip_count: int
    used_addresses: frozenset[str] = frozenset()
    namespace_vips: int = 0
    """VIPs of the scheduled VIP's namespace already on this device (for the tenant quota)."""
    listeners: Mapping[tuple[str, int, str], str] = field(default_factory=dict)
    """(address, port, transport) → "namespace/name" of the VIP serving it on this device
    (a UDP and a TCP VIP may share address and port)."""

    @property
    def load(self) -> float:
        capacity = self.spec.capacity.max_vips
        return self.vip_count / capacity if capacity else float("inf")


# Exclusions found by the last checks, on devices that would otherwise take the VIP: when they
# are all that stands in the way, the VIP's error says so by its own reason.
ADDRESS_NOT_ALLOWED = "AddressNotAllowed"
ADDRESS_IN_USE = "AddressInUse"
QUOTA_EXCEEDED = "QuotaExceeded"
NO_ELIGIBLE_DEVICE = "NoEligibleDevice"
NOT_ALLOWED = "not allowed for namespace"
NOT_PINNED = "not the device pinned by deviceRef"
_SPECIFIC = (ADDRESS_NOT_ALLOWED, ADDRESS_IN_USE, QUOTA_EXCEEDED)


@dataclass(frozen=True)
class Decision:
    eligible: tuple[Candidate, ...]
    exclusions: Mapping[str, str] = field(default_factory=dict)  # device name → reason
    specific: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Device name → (reason, message) for devices excluded only by address or quota rules."""
    namespace: str = ""
    """The VIP's namespace (for the message)."""

    @property
    def reason(self) -> str:
        """The CamelCase reason of a failed decision: the specific one when every device that
        passed the other checks was refused for it, else NoEligibleDevice."""
        for code in _SPECIFIC:
            if any(r == code for r, _ in self.specific.values()):
                return code
        return NO_ELIGIBLE_DEVICE

    @property
    def chosen(self) -> Candidate | None:
        """The least-loaded eligible device (by fill ratio, then count, then name)."""
        if not self.eligible:
            return None
        return min(self.eligible, key=lambda c: (c.load, c.vip_count, c.name))

    def explain(self) -> str:
        """A message a person can act on: how many devices were excluded, and for what."""
        code = self.reason
        if code != NO_ELIGIBLE_DEVICE:
            messages = sorted({m for r, m in self.specific.values() if r == code})
            return "; ".join(messages[:3]) + (" (and more)" if len(messages) > 3 else "")
        if not self.exclusions:
            return "no Device exists; create one (kubectl get devices)"
        # Devices closed to the namespace are other tenants' business: neither counted nor
        # named, so their comings and goings never rewrite this VIP's status (nor post Events).
        open_ = {d: r for d, r in self.exclusions.items() if not r.startswith(NOT_ALLOWED)}
        if any(r != NOT_PINNED for r in open_.values()):
            open_ = {d: r for d, r in open_.items() if r != NOT_PINNED}  # the pinned one says
        if not open_:
            return (
                f"no Device is open to namespace {self.namespace}: each is {NOT_ALLOWED}"
                f" {self.namespace} (allowedNamespaces, namespaceSelector); ask a cluster"
                " administrator for one"
            )
        counts = Counter(open_.values())
        parts = [f"{n} {reason}" for reason, n in sorted(counts.items())]
        return (
            f"no eligible device among the {len(open_)} open to namespace {self.namespace}: "
            + ", ".join(parts)
        )


DriverCheck = Callable[[Candidate], str | None]
"""Returns why the candidate's driver cannot serve the VIP, or None."""


def namespace_allowed(spec: DeviceSpec, namespace: str, ns_labels: Mapping[str, str]) -> bool:
    if spec.allowed_namespaces is not None and namespace not in spec.allowed_namespaces:
        return False
    return spec.namespace_selector is None or spec.namespace_selector.matches(dict(ns_labels))


def schedule(
    vip: VIPSpec,
    namespace: str,
    namespace_labels: Mapping[str, str],
    candidates: Sequence[Candidate],
    driver_check: DriverCheck,
) -> Decision:
    """Filter the inventory down to the devices that may take this VIP."""
    eligible: list[Candidate] = []
    exclusions: dict[str, str] = {}
    specific: dict[str, tuple[str, str]] = {}
    for c in candidates:
        reason = _exclusion(vip, namespace, namespace_labels, c, driver_check)
        if reason is None:
            found = _tenant_exclusion(vip, namespace, c)
            if found is None:
                eligible.append(c)
                continue
            specific[c.name] = found
            reason = found[1]
        exclusions[c.name] = reason
    if vip.device_ref and vip.device_ref not in {c.name for c in candidates}:
        exclusions[vip.device_ref] = f"pinned by deviceRef but no Device {vip.device_ref} exists"
    return Decision(tuple(eligible), exclusions, specific, namespace)


def _tenant_exclusion(vip: VIPSpec, namespace: str, c: Candidate) -> tuple[str, str] | None:
    """The address and quota rules of a shared device: (reason, message) or None."""
    if vip.address:
        problem = vip_address_problem(c.spec, vip.address, c.name)
        if problem:
            return ADDRESS_NOT_ALLOWED, problem
        kind = transport(vip.protocol)
        holder = _listener_holder(c, vip.address, vip.port, kind)
        if holder:
            where = f"{vip.address}:{vip.port}{'/udp' if kind == 'UDP' else ''}"
            return ADDRESS_IN_USE, f"{where} is already used by VIP {holder} on device {c.name}"
    limit = c.spec.capacity.max_vips_per_namespace
    if limit is not None and c.namespace_vips >= limit:
        return (
            QUOTA_EXCEEDED,
            f"namespace {namespace} already has {c.namespace_vips} VIP(s) on device {c.name}"
            f" (its maxVIPsPerNamespace is {limit})",
        )
    return None


def _listener_holder(c: Candidate, address: str, port: int, kind: str) -> str | None:
    wanted = ipaddress.ip_address(address)
    for (addr, p, t), holder in c.listeners.items():
        if p == port and t == kind and ipaddress.ip_address(addr) == wanted:
            return holder
    return None


def _exclusion(
    vip: VIPSpec,
    namespace: str,
    namespace_labels: Mapping[str, str],
    c: Candidate,
    driver_check: DriverCheck,
) -> str | None:
    if vip.device_ref and c.name != vip.device_ref:
        return NOT_PINNED
    if not namespace_allowed(c.spec, namespace, namespace_labels):
        return f"{NOT_ALLOWED} {namespace}"  # first: the rest is not this tenant's business
    if c.phase != DevicePhase.READY:
        return f"not Ready ({c.phase or 'not probed yet'})"
    if not c.spec.schedulable:
        return "cordoned (schedulable: false)"
    if vip.device_selector is not None and not vip.device_selector.matches(dict(c.labels)):
        return "labels do not match deviceSelector"
    if c.vip_count >= c.spec.capacity.max_vips:
        return "at capacity"
    unsupported = driver_check(c)
    if unsupported:
        return unsupported
    if not vip.address and not has_free(c.spec.address_pool, c.used_addresses):
        return "no free address in addressPool"
    return None
