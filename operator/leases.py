"""Kubernetes Leases as the operator uses them: records, names, compare-and-swap, expiry.

Everything that decides *who owns what* goes through a ``coordination.k8s.io/v1`` Lease:

- ``lbaas-controller``: the controller leader (:mod:`lbaas.agents.election`);
- ``lbaas-agent-<id>``: an agent's presence; its labels (JSON) in annotation
  ``lbaas.dev/agent-labels``, so every agent can run the same assignment;
- ``lbaas-device-<device>``: who drives a Device (:mod:`lbaas.agents.ownership`); the Device's
  name in annotation ``lbaas.dev/device`` (a Lease name cannot always hold it, see
  :func:`device_lease_name`). ``leaseTransitions`` grows with every new ownership epoch: it is
  the **fence** given to drivers (``DeviceHandle.fence``).

Writes are compare-and-swap on ``metadata.resourceVersion``: the API server answers 409 to a
write based on a stale read, and :class:`LeaseStore` returns None then. Nothing ever overwrites
a Lease it did not read last.

Expiry never compares the remote ``renewTime`` with the local clock (hosts' clocks differ).
As in client-go, an :class:`Observer` notes the local ``time.monotonic()`` at which it saw a
Lease *change*; a held Lease is expired for this observer once it stayed unchanged for its
duration. A released Lease (no holder) is free at once.

A holder is a name (the agent id, the controller's identity) plus an *incarnation*, a random
token per process in annotation ``lbaas.dev/incarnation``: a restarted process with the same
name is a different holder and waits for its predecessor's Leases to expire like anybody else
(its predecessor may have died in the middle of a driver call).

Calls are blocking (the official ``kubernetes`` client); callers run them in threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "lbaas-operator"
KIND_LABEL = "lbaas.dev/lease"
KIND_CONTROLLER, KIND_AGENT, KIND_DEVICE = "controller", "agent", "device"
DEVICE_ANNOTATION = "lbaas.dev/device"
AGENT_LABELS_ANNOTATION = "lbaas.dev/agent-labels"
INCARNATION_ANNOTATION = "lbaas.dev/incarnation"
RELEASED_BY_ANNOTATION = "lbaas.dev/released-by"
RELEASE_REASON_ANNOTATION = "lbaas.dev/release-reason"

LEADER_LEASE = "lbaas-controller"
AGENT_PREFIX = "lbaas-agent-"
DEVICE_PREFIX = "lbaas-device-"
#: One list call returns every Lease an agent needs (presences and devices).
AGENTS_AND_DEVICES_SELECTOR = (
    f"{MANAGED_BY_LABEL}={MANAGED_BY},{KIND_LABEL} in ({KIND_AGENT},{KIND_DEVICE})"
)

_MAX_NAME = 253
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HASH_LEN = 10


def new_incarnation() -> str:
    """A random token naming this process among holders of the same name."""
    return secrets.token_hex(8)


def agent_lease_name(agent_id: str) -> str:
    """Name of the presence Lease of an agent (agent ids are DNS labels ≤ 63: always fits)."""
    return AGENT_PREFIX + agent_id


def device_lease_name(device: str) -> str:
    """A valid Lease name (DNS subdomain, ≤ 253 chars) for ``device``, the same on every host.

    ``lbaas-device-<device>`` when that is valid; else (a 253-char Device name does not fit
    after the prefix) the name is cut, cleaned to a valid prefix and ends with ``-`` and 10 hex
    digits of the SHA-256 of the Device name. Readers take the Device's name from the
    ``lbaas.dev/device`` annotation, never from the Lease name.
    """
    plain = DEVICE_PREFIX + device
    if len(plain) <= _MAX_NAME and _SUBDOMAIN.match(plain):
        return plain
    digest = hashlib.sha256(device.encode()).hexdigest()[:_HASH_LEN]
    labels = re.sub(r"[^a-z0-9.-]", "-", plain.lower()).split(".")
    cleaned = ".".join(label.strip("-") for label in labels if label.strip("-"))
    head = cleaned[: _MAX_NAME - _HASH_LEN - 1].rstrip(".-")
    return f"{head}-{digest}"


def _time(raw: Any) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))


def now_utc() -> datetime:
    """Wall-clock time for ``acquireTime``/``renewTime`` (informative only, never compared).

    The microseconds are never 0: the client serialises datetimes with ``isoformat()``, which
    drops a zero fraction, and the API server rejects a MicroTime without one (400).
    """
    now = datetime.now(UTC)
    return now if now.microsecond else now.replace(microsecond=1)


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease as read (with its ``resource_version``) or as to be written.

    The methods return the record a holder wants to write next; :meth:`LeaseStore.update`
    writes it if nobody wrote the Lease since ``resource_version`` was read.
    """

    name: str
    holder: str | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    duration_seconds: int | None = None
    transitions: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str | None = None

    @property
    def incarnation(self) -> str | None:
        return self.annotations.get(INCARNATION_ANNOTATION)

    @property
    def device(self) -> str | None:
        """The Device a device Lease is for."""
        return self.annotations.get(DEVICE_ANNOTATION)

    @property
    def kind(self) -> str | None:
        """``controller``, ``agent`` or ``device`` (label ``lbaas.dev/lease``)."""
        return self.labels.get(KIND_LABEL)

    def agent_labels(self) -> dict[str, str]:
        """The labels an agent published on its presence Lease ({} if unreadable)."""
        try:
            labels = json.loads(self.annotations.get(AGENT_LABELS_ANNOTATION, "{}"))
        except ValueError:
            return {}
        if not isinstance(labels, dict):
            return {}
        return {str(k): str(v) for k, v in labels.items()}

    def held_by(self, holder: str, incarnation: str) -> bool:
        """Held by this very process (name and incarnation), not by a namesake."""
        return self.holder == holder and self.incarnation == incarnation

    def acquired(
        self, holder: str, incarnation: str, duration: float, now: datetime | None = None
    ) -> LeaseRecord:
        """This Lease taken by ``holder``: a new ownership epoch, so ``transitions`` + 1."""
        now = now or now_utc()
        annotations = {
            k: v
            for k, v in self.annotations.items()
            if k not in (RELEASED_BY_ANNOTATION, RELEASE_REASON_ANNOTATION)
        }
        annotations[INCARNATION_ANNOTATION] = incarnation
        return dataclasses.replace(
            self,
            holder=holder,
            acquire_time=now,
            renew_time=now,
            duration_seconds=lease_seconds(duration),
            transitions=self.transitions + 1,
            annotations=annotations,
        )

    def renewed(self, now: datetime | None = None) -> LeaseRecord:
        """This Lease renewed by its holder (a changed ``renewTime``: a new resourceVersion)."""
        return dataclasses.replace(self, renew_time=now or now_utc())

    def released(self, reason: str, now: datetime | None = None) -> LeaseRecord:
        """This Lease with no holder (free at once for everyone), saying who let go and why."""
        annotations = {k: v for k, v in self.annotations.items() if k != INCARNATION_ANNOTATION}
        annotations[RELEASED_BY_ANNOTATION] = self.holder or ""
        annotations[RELEASE_REASON_ANNOTATION] = reason
        return dataclasses.replace(
            self, holder=None, renew_time=now or now_utc(), annotations=annotations
        )

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> LeaseRecord:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        return cls(
            name=meta["name"],
            holder=spec.get("holderIdentity") or None,
            acquire_time=_time(spec.get("acquireTime")),
            renew_time=_time(spec.get("renewTime")),
            duration_seconds=spec.get("leaseDurationSeconds"),
            transitions=int(spec.get("leaseTransitions") or 0),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            resource_version=meta.get("resourceVersion"),
        )

    def to_wire(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }
        if self.resource_version is not None:
            meta["resourceVersion"] = self.resource_version
        spec: dict[str, Any] = {"leaseTransitions": self.transitions}
        for key, value in (
            ("holderIdentity", self.holder),
            ("acquireTime", self.acquire_time),
            ("renewTime", self.renew_time),
            ("leaseDurationSeconds", self.duration_seconds),
        ):
            if value is not None:
                spec[key] = value
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }


def lease_seconds(duration: float) -> int:
    """``leaseDurationSeconds`` is an integer: round up (others then wait at least as long)."""
    return max(1, int(-(-duration // 1)))


def our_labels(kind: str) -> dict[str, str]:
    """Labels every Lease of ours carries (the list selector relies on them)."""
    return {MANAGED_BY_LABEL: MANAGED_BY, KIND_LABEL: kind}


class Observer:
    """When did each Lease last change, by the local monotonic clock (client-go's method).

    ``observe`` is called with every read, with the monotonic time taken *after* the read
    returned: a change is noted no earlier than it happened on the server, so an observer
    never believes a Lease older than it is. A Lease seen for the first time counts as just
    changed: a process that starts waits a full duration before taking anything over.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[str | None, str | None], float]] = {}

    def observe(self, record: LeaseRecord, at: float) -> None:
        """Note ``record`` as read at monotonic time ``at``."""
        key = (record.resource_version, record.holder)
        seen = self._seen.get(record.name)
        if seen is None or seen[0] != key:
            self._seen[record.name] = (key, at)

    def observe_all(self, records: Iterable[LeaseRecord], at: float) -> None:
        """Observe a list result, and forget Leases that are gone from it."""
        names = set()
        for record in records:
            self.observe(record, at)
            names.add(record.name)
        for name in set(self._seen) - names:
            del self._seen[name]

    def changed_at(self, name: str) -> float | None:
        """Monotonic time of the last change seen, None if never seen."""
        seen = self._seen.get(name)
        return None if seen is None else seen[1]

    def expires_at(self, record: LeaseRecord, duration: float) -> float:
        """Monotonic time from which ``record`` may be taken over (``-inf``: free now).

        The wait is the longer of our own ``duration`` and the one the holder published: a
        holder with a longer lease is never cut short by an observer configured shorter.
        """
        if not record.holder:
            return float("-inf")
        changed = self.changed_at(record.name)
        if changed is None:
            return float("inf")
        return changed + max(duration, float(record.duration_seconds or 0))

    def is_free(self, record: LeaseRecord, duration: float, now: float) -> bool:
        """Released, or held but unchanged for the lease duration (its holder is gone)."""
        return now >= self.expires_at(record, duration)


class LeaseStore:
    """Blocking Lease access in one namespace: read, list, and compare-and-swap writes.

    Every call is bounded by ``request_timeout`` seconds (a hung API server must not hold a
    thread forever). Writes return None when they lost a race (409 Conflict, or 404 for an
    update of a deleted Lease); other API errors raise ``ApiException``.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        namespace: str,
        *,
        request_timeout: float = 5.0,
    ) -> None:
        # Any: with _preload_content=False the calls return the raw HTTP response, and bodies
        # are plain dicts (parsed JSON keeps MicroTimes as the server wrote them).
        self.api: Any = kubernetes.client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.timeout = request_timeout

    def _opts(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self.timeout}

    @staticmethod
    def _record(response: Any) -> LeaseRecord:
        return LeaseRecord.from_wire(json.loads(response.data))

    def get(self, name: str) -> LeaseRecord | None:
        """The Lease ``name``, None if it does not exist (a consistent read)."""
        try:
            return self._record(
                self.api.read_namespaced_lease(name, self.namespace, **self._opts())
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, label_selector: str) -> list[LeaseRecord]:
        """Every Lease matching ``label_selector``, in one consistent list call."""
        response = self.api.list_namespaced_lease(
            self.namespace, label_selector=label_selector, **self._opts()
        )
        return [LeaseRecord.from_wire(item) for item in json.loads(response.data)["items"]]

    def create(self, record: LeaseRecord) -> LeaseRecord | None:
        """Create ``record`` (its resource_version is ignored); None if it already exists."""
        body = dataclasses.replace(record, resource_version=None).to_wire()
        try:
            return self._record(
                self.api.create_namespaced_lease(self.namespace, body, **self._opts())
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def update(self, record: LeaseRecord) -> LeaseRecord | None:
        """Write ``record`` if the Lease is still at ``record.resource_version``.

        Returns the stored Lease (with its new resourceVersion), or None when somebody else
        wrote it meanwhile (409) or it was deleted (404): re-read and decide again.
        """
        if record.resource_version is None:
            raise ValueError("update needs the resourceVersion the record was read at")
        try:
            response = self.api.replace_namespaced_lease(
                record.name, self.namespace, record.to_wire(), **self._opts()
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise
        return self._record(response)

    def release(
        self, record: LeaseRecord, identity: str, reason: str = "released"
    ) -> LeaseRecord | None:
        """Clear the holder (as client-go's ReleaseOnCancel) if ``identity`` still holds it.

        Others may take a released Lease at once, so call this only after the work the Lease
        protects has stopped. None when the Lease changed meanwhile or is not held by
        ``identity``.
        """
        if record.holder != identity:
            return None
        return self.update(record.released(reason))
