"""Fleet gauges: what the informer caches say about the cluster, as Prometheus gauges.

Every operator process (controller, agent, run) holds the trees and the Devices in its caches
and sets these every few seconds (:meth:`FleetGauges.update`, called by the runtime), so any
process scraped tells the same story; alert rules take ``max`` over processes. The figures
come from the objects' statuses (the operator's own conclusions, written by the one reporter)
and from the device Leases (controller and run only: the processes that watch them):

- objects by kind and phase, members by operating status (``lbaas_objects``,
  ``lbaas_member_operating_status``);
- since when the longest-standing object of a kind is Pending or Error
  (:class:`PhaseClock`): "a VIP in Error for ten minutes" is one series per kind, not one
  per object (13,000 objects would be 13,000 series);
- per Device: its phase and reason (``NoAgent``: no live agent holds its Lease), how many
  addresses its ``addressPool`` hands out and how many bound VIPs use, and its Lease's
  ``leaseTransitions`` (every new owner counts one: a flapping ownership shows as a climb).

Documented, with labels and cardinality, in docs/metrics.md.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from lbaas import metrics
from lbaas.kube.informer import Informer
from lbaas.kube.resources import DEVICES, TREE_KINDS
from lbaas.leases import LeaseRecord
from lbaas.placement.addresses import pool_size
from lbaas.status import READY, condition
from lbaas.views import Views, meta_of, spec_of, status_of

WATCHED_PHASES = ("Pending", "Error")
"""Phases whose duration is tracked (Active is the normal state, not worth a clock)."""

ObjectKey = tuple[str, str, str]  # kind, namespace, name


def _parse_time(stamp: Any) -> float | None:
    """A status timestamp (RFC 3339, ``Z``) as a Unix time; None when absent or malformed."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class PhaseClock:
    """Since when each object has been in its (watched) phase, as this process saw it.

    A phase change seen by this process starts the clock then. An object first seen already
    in the phase (the process just started) is dated by its ``Ready`` condition's last
    transition when that condition is not True (the object stopped being ready then, and has
    not been ready since), else by now: never earlier than the status can vouch for.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._since: dict[ObjectKey, tuple[str, float]] = {}

    def observe(self, objects: Iterable[tuple[ObjectKey, Mapping[str, Any]]]) -> None:
        """Note every object's current status; objects not passed are forgotten."""
        now = self.clock()
        seen: dict[ObjectKey, tuple[str, float]] = {}
        for key, status in objects:
            phase = str(status.get("phase") or "")
            if phase not in WATCHED_PHASES:
                continue
            known = self._since.get(key)
            if known is not None and known[0] == phase:
                seen[key] = known
            elif known is not None:  # a change this process saw: it starts now
                seen[key] = (phase, now)
            else:
                seen[key] = (phase, self._first_sight(status, now))
        self._since = seen

    @staticmethod
    def _first_sight(status: Mapping[str, Any], now: float) -> float:
        ready = condition(status, READY)
        if ready.get("status") in ("False", "Unknown"):
            stamp = _parse_time(ready.get("lastTransitionTime"))
            if stamp is not None:
                return min(stamp, now)
        return now

    def oldest(self) -> dict[tuple[str, str], float]:
        """(kind, phase) → the earliest time an object still in that phase entered it."""
        found: dict[tuple[str, str], float] = {}
        for (kind, _, _), (phase, since) in self._since.items():
            key = (kind, phase)
            found[key] = min(since, found.get(key, since))
        return found


Span = tuple[int, int, int]  # IP version, first, last (as integers)


@functools.lru_cache(maxsize=1024)
def _spans(pool: tuple[str, ...]) -> tuple[Span, ...]:
    """Every entry of an addressPool as an integer range (a CIDR whole, a range from its
    lower end to its higher, as written in either order)."""
    spans = []
    for entry in pool:
        try:
            if "-" in entry:
                start, _, end = entry.partition("-")
                first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
                low, high = sorted((int(first), int(last)))
                spans.append((first.version, low, high))
            else:
                net = ipaddress.ip_network(entry, strict=False)
                spans.append((net.version, int(net.network_address), int(net.broadcast_address)))
        except ValueError:
            continue  # the API validates entries; a bad one simply contributes nothing
    return tuple(spans)


def address_usage(pool: Iterable[str], used: Iterable[str]) -> tuple[int, int]:
    """(addresses the pool hands out, how many of ``used`` lie in the pool)."""
    entries = tuple(pool)
    try:
        size = pool_size(entries)
    except ValueError:
        size = 0
    spans = _spans(entries)
    inside = 0
    for address in used:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        value = int(ip)
        if any(v == ip.version and low <= value <= high for v, low, high in spans):
            inside += 1
    return size, inside


def lease_transitions(leases: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Device name → ``leaseTransitions`` of its Lease (the Device named by annotation)."""
    found: dict[str, int] = {}
    for obj in leases:
        record = LeaseRecord.from_wire(obj)
        if record.device:
            found[record.device] = record.transitions
    return found


Labels = tuple[str, ...]


class FleetGauges:
    """Sets the fleet gauges from the caches (``update``: every few seconds).

    Each gauge's series are replaced in place: new values set first, then the series that
    are gone removed (a scrape in between never sees a gauge emptied by ``clear``).
    """

    def __init__(
        self,
        views: Views,
        leases: Informer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.views = views
        self.leases = leases
        self.phases = PhaseClock(clock)
        self._published: dict[int, set[Labels]] = {}  # id(gauge) → its series

    def publish(self, gauge: Any, values: Mapping[Labels, float]) -> None:
        """``gauge`` holds exactly ``values`` (labels → value) from now on."""
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        name = id(gauge)
        for labels in self._published.get(name, set()) - set(values):
            gauge.remove(*labels)
        self._published[name] = set(values)

    def update(self) -> None:
        self._objects()
        self._devices()
        if self.leases is not None:
            transitions = lease_transitions(self.leases.cache.values())
            self.publish(
                metrics.DEVICE_LEASE_TRANSITIONS, {(d,): n for d, n in transitions.items()}
            )

    def _objects(self) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        members: Counter[str] = Counter()
        observed: list[tuple[ObjectKey, Mapping[str, Any]]] = []
        for resource in (*TREE_KINDS, DEVICES):
            informer = self.views.informers.get(resource)
            for obj in informer.cache.values() if informer else ():
                status = status_of(obj)
                counts[(resource.kind, str(status.get("phase") or "None"))] += 1
                if resource.kind == "Member" and status.get("operatingStatus"):
                    members[str(status["operatingStatus"])] += 1
                if resource.kind != "Device":
                    meta = meta_of(obj)
                    key = (resource.kind, str(meta.get("namespace")), str(meta.get("name")))
                    observed.append((key, status))
        by_phase: dict[Labels, float] = {k: float(n) for k, n in counts.items()}
        self.publish(metrics.OBJECTS, by_phase)
        self.publish(metrics.MEMBER_STATUS, {(state,): n for state, n in members.items()})
        self.phases.observe(observed)
        oldest: dict[Labels, float] = dict(self.phases.oldest().items())
        self.publish(metrics.OLDEST_IN_PHASE, oldest)

    def _devices(self) -> None:
        phases: dict[Labels, float] = {}
        sizes: dict[Labels, float] = {}
        used: dict[Labels, float] = {}
        for device in self.views.devices():
            name = str(meta_of(device)["name"])
            status = status_of(device)
            reason = str(status.get("reason") or "")
            phases[(name, str(status.get("phase") or "None"), reason)] = 1
            pool = [str(e) for e in spec_of(device).get("addressPool") or ()]
            sizes[(name,)], used[(name,)] = address_usage(pool, self.views.used_addresses(name))
        self.publish(metrics.DEVICE_PHASE, phases)
        self.publish(metrics.DEVICE_ADDRESSES, sizes)
        self.publish(metrics.DEVICE_ADDRESSES_USED, used)
