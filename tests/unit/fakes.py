"""Fakes to test the operator's core without an API server (the way MetalLB tests its
controller against a fake status writer).

- :class:`Cluster` plays the API server and the informers at once: objects are put into the
  real :class:`~lbaas.kube.informer.Informer` caches by hand (so :class:`~lbaas.views.Views`
  and every subscriber see the same change stream as in production), with growing
  resourceVersions, generations that follow the spec, deletion that waits for finalizers,
  and server-side apply of statuses: each field manager owns the fields and condition types
  it applied, and loses those it leaves out on its next apply.
- :class:`FakeReporter` has the :class:`~lbaas.reporter.Reporter` interface and records every
  status apply (by manager), finalizer change and Event; like the real one it sends no write
  that would change nothing, and a conditional write on a stale object fails (409).
- :class:`Rig` is an agent's core for one or more Devices: real :class:`DeviceWorker` s over
  the real fake driver (``tests/plugins/fakedriver``, a JSON file as the device), a gate whose
  ``may_start`` always grants a deadline, the real ``TreeReconciler`` and ``TreeLoops``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from helpers import stored, stored_members
from lbaas.agents.worker import DeviceWorker
from lbaas.config import OperatorSettings
from lbaas.drivers.model import LoadBalancer, Member
from lbaas.drivers.registry import DriverRegistry
from lbaas.drivers.runner import DriverRunner
from lbaas.kube.client import Kube
from lbaas.kube.informer import Informer, Obj
from lbaas.kube.resources import BY_KIND, DEVICES, NAMESPACES, TREE_KINDS, Resource
from lbaas.reporter import FINALIZER, Redactor, Reporter
from lbaas.status import SCHEDULED, Cond, desired_status, merge_conditions, needs_write
from lbaas.trees.loop import Mode, Result, TreeLoops
from lbaas.trees.reconcile import TreeReconciler
from lbaas.views import Views

NS = "team-a"
VipKey = tuple[str, str]
T = TypeVar("T")
TEST_TIMEOUT = 20.0


def async_test(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an ``async def`` test in a fresh event loop (pytest sees its fixtures)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT))

    return wrapper


async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (then return it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


def settings(**overrides: Any) -> OperatorSettings:
    """Short intervals, no periodic work unless a test asks for it."""
    values: dict[str, Any] = {
        "agent_id": "agent-a",
        "lease_namespace": "lbaas-system",
        "driver_timeout": 2.0,
        "lease_duration": 10.0,
        "lease_renew_period": 1.0,
        "pending_delay": 0.2,
        "debounce": 0.0,
        "resync_interval": 3600.0,
        "probe_interval": 3600.0,
        "member_status_interval": 3600.0,
        "parent_timeout": 60.0,
        "delete_attempts": 2,
        "retry_backoff_max": 0.2,
    }
    values.update(overrides)
    return OperatorSettings(**values)


# ---- the API server and the informers ----------------------------------------------------------


class Conflict(Exception):
    """409: a conditional write on an object that changed since it was read."""


class FakeInformer(Informer):
    """A real informer's cache, filled by :class:`Cluster` instead of a watch."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(cast(Kube, None), resource)
        self.synced.set()

    async def relist(self) -> None:
        """The cache is the truth here: nothing to list."""


class Cluster:
    """Objects, their versions and their statuses, as the API server would keep them."""

    def __init__(self) -> None:
        self.informers: dict[Resource, Informer] = {
            r: FakeInformer(r) for r in (*TREE_KINDS, DEVICES, NAMESPACES)
        }
        self.views = Views(self.informers)
        self._versions = itertools.count(100)
        self._created = itertools.count(1)
        # (kind, namespace, name) -> status field (or ("conditions", type)) -> field manager

    def _informer(self, kind: str) -> Informer:
        return self.informers[BY_KIND[kind]]

    def get(self, kind: str, name: str, namespace: str = NS) -> Obj | None:
        ns = namespace if BY_KIND[kind].namespaced else ""
        return self._informer(kind).cache.get((ns, name))

    def status(self, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
        return dict((self.get(kind, name, namespace) or {}).get("status") or {})

    def _store(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self._informer(obj["kind"])._apply("MODIFIED", obj)  # as the watch thread posts it
        return obj

    def _remove(self, obj: Obj) -> None:
        self._informer(obj["kind"])._apply("DELETED", copy.deepcopy(obj))

    # ---- what users do ------------------------------------------------------------------------

    def create(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        *,
        namespace: str = NS,
        labels: dict[str, str] | None = None,
        status: dict[str, Any] | None = None,
    ) -> Obj:
        resource = BY_KIND[kind]
        meta: dict[str, Any] = {
            "name": name,
            "uid": f"uid-{kind}-{name}-{next(self._created)}",
            "generation": 1,
            "creationTimestamp": f"2024-01-01T00:00:{next(self._created) % 60:02d}Z",
        }
        if resource.namespaced:
            meta["namespace"] = namespace
        if labels:
            meta["labels"] = labels
        obj: Obj = {"apiVersion": resource.api_version, "kind": kind, "metadata": meta}
        obj["spec"] = spec
        if status:
            obj["status"] = status
        return self._store(obj)

    def update_spec(self, kind: str, name: str, namespace: str = NS, **changes: Any) -> Obj:
        obj = copy.deepcopy(self.get(kind, name, namespace))
        assert obj is not None, f"{kind} {name} does not exist"
        obj["spec"].update(changes)
        obj["metadata"]["generation"] += 1
        return self._store(obj)

    def set_labels(self, kind: str, name: str, labels: dict[str, str], namespace: str = NS) -> Obj:
        obj = copy.deepcopy(self.get(kind, name, namespace))
        assert obj is not None, f"{kind} {name} does not exist"
        obj["metadata"]["labels"] = labels
        return self._store(obj)

    def delete(self, kind: str, name: str, namespace: str = NS) -> None:
        """Mark for deletion; gone at once when no finalizer holds it."""
        obj = copy.deepcopy(self.get(kind, name, namespace))
        assert obj is not None, f"{kind} {name} does not exist"
        if not obj["metadata"].get("finalizers"):
            self._remove(obj)
            return
        obj["metadata"]["deletionTimestamp"] = "2024-02-01T00:00:00Z"
        self._store(obj)

    # ---- what the operator writes (through FakeReporter) --------------------------------------

    def patch_status(self, obj: Obj, desired: dict[str, Any]) -> Obj | None:
        """A merge patch of ``status``, conditional on ``obj``'s resourceVersion (as the real
        Reporter sends it): None removes a field, conditions are merged by type."""
        meta = obj["metadata"]
        stored = self.get(obj["kind"], meta["name"], meta.get("namespace") or NS)
        if stored is None:
            return None
        if meta.get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise Conflict(f"{obj['kind']} {meta['name']} changed since it was read")
        status = copy.deepcopy(stored.get("status") or {})
        for name, value in desired.items():
            if name == "conditions":
                status["conditions"] = merge_conditions(status.get("conditions") or [], value)
            elif value is None:
                status.pop(name, None)
            else:
                status[name] = copy.deepcopy(value)
        new = copy.deepcopy(stored)
        new["status"] = status
        return self._store(new)

    def set_finalizer(self, obj: Any, present: bool) -> Obj | None:
        meta = obj["metadata"]
        stored = self.get(obj["kind"], meta["name"], meta.get("namespace") or NS)
        if stored is None:
            return None
        new = copy.deepcopy(stored)
        finalizers = [f for f in new["metadata"].get("finalizers") or () if f != FINALIZER]
        if present:
            finalizers.append(FINALIZER)
        new["metadata"]["finalizers"] = finalizers
        if not finalizers and new["metadata"].get("deletionTimestamp"):
            self._remove(new)
            return new
        return self._store(new)


# ---- the status writer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    kind: str
    name: str
    status: dict[str, Any]


@dataclass(frozen=True)
class Event:
    kind: str
    name: str
    type: str
    reason: str
    message: str


@dataclass
class FakeReporter:
    """The Reporter's interface over :class:`Cluster`, recording what it was asked to write."""

    cluster: Cluster
    latency: float = 0.0
    """Seconds each status write takes (lets concurrent writers interleave)."""
    writes: list[Write] = field(default_factory=list)
    finalizers: list[tuple[str, str, bool]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    skipped: int = 0
    conflicts: int = 0
    redact: Redactor = field(default_factory=Redactor)

    async def status(self, obj: Obj, desired: Any) -> bool:
        if not needs_write(obj.get("status") or {}, desired):
            self.skipped += 1
            return True
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            written = self.cluster.patch_status(obj, dict(desired))
        except Conflict:
            self.conflicts += 1
            return False
        if written is None:
            return False
        self.writes.append(Write(obj["kind"], obj["metadata"]["name"], dict(desired)))
        return True

    async def finalizer(self, obj: Any, *, present: bool) -> bool:
        if (FINALIZER in (obj["metadata"].get("finalizers") or ())) == present:
            return True
        self.finalizers.append((obj["kind"], obj["metadata"]["name"], present))
        return self.cluster.set_finalizer(obj, present) is not None

    async def service_load_balancer(self, service: Obj, load_balancer: Any) -> bool:
        raise NotImplementedError("no Services in these tests")

    def event(self, obj: Any, *, reason: str, message: str, warning: bool) -> None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        self.events.append(
            Event(kind, name, "Warning" if warning else "Normal", reason, self.redact(message))
        )

    def warn(self, obj: Any, *, reason: str, message: str) -> None:
        self.event(obj, reason=reason, message=message, warning=True)

    def info(self, obj: Any, *, reason: str, message: str) -> None:
        self.event(obj, reason=reason, message=message, warning=False)

    async def drain(self, timeout: float = 5.0) -> None:
        """Events are recorded synchronously: nothing to wait for."""

    # ---- what tests ask ----------------------------------------------------------------------

    def writes_to(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [w.status for w in self.writes if (w.kind, w.name) == (kind, name)]

    def events_of(self, kind: str, name: str, reason: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if (e.kind, e.name) == (kind, name) and reason in (None, e.reason)
        ]

    def as_reporter(self) -> Reporter:
        return cast(Reporter, self)


# ---- an agent's core over the fake driver ------------------------------------------------------


class AlwaysHeld:
    """A lease gate that always grants: the deadline is the driver timeout from now."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self.held = True

    def may_start(self, device: str) -> float | None:
        return time.monotonic() + self.seconds if self.held else None

    def nudge(self) -> None:
        pass


def tree_spec(kind: str, **spec: Any) -> dict[str, Any]:
    """A valid spec of ``kind`` with test defaults, overridden by ``spec``."""
    defaults: dict[str, dict[str, Any]] = {
        "VIP": {"port": 80, "protocol": "TCP"},
        "Pool": {"vipRef": "web", "protocol": "TCP"},
        "Member": {"poolRef": "web", "address": "10.1.0.1", "port": 8080},
        "HealthMonitor": {"poolRef": "web", "type": "TCP", "delay": 5, "timeout": 3},
    }
    return {**defaults[kind], **spec}


class Rig:
    """An agent's core: Devices with real workers over the fake driver, the reconciler, loops.

    Worker triggers are recorded in ``triggered``; they reach the loops only with
    ``loops_on`` (tests of single reconciles call ``reconcile`` themselves).
    """

    def __init__(self, tmp: Path, **overrides: Any) -> None:
        self.tmp = tmp
        self.settings = settings(**overrides)
        self.cluster = Cluster()
        self.views = self.cluster.views
        self.reporter = FakeReporter(self.cluster)
        self.drivers = DriverRegistry()
        self.runner = DriverRunner(4, self.settings.driver_timeout)
        self.gate = AlwaysHeld()
        self.workers: dict[str, DeviceWorker] = {}
        self.reconciler = TreeReconciler(
            views=self.views,
            reporter=self.reporter.as_reporter(),
            settings=self.settings,
            workers=self.workers,
        )
        self.turns: list[tuple[VipKey, Mode, Result]] = []
        self.loops = TreeLoops(
            self._counted,
            debounce=self.settings.debounce,
            resync_interval=self.settings.resync_interval,
            backoff_max=self.settings.retry_backoff_max,
        )
        self.triggered: list[tuple[VipKey, Mode]] = []
        self.loops_on = False

    async def _counted(self, key: VipKey, mode: Mode) -> Result:
        result = await self.reconciler(key, mode)
        self.turns.append((key, mode, result))
        return result

    def _trigger(self, key: VipKey, mode: Mode) -> None:
        self.triggered.append((key, mode))
        if self.loops_on:
            self.loops.trigger(key, mode)

    async def __aenter__(self) -> Rig:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.loops.stop_all()
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.runner.shutdown()

    # ---- the device -------------------------------------------------------------------------

    def state_file(self, device: str) -> Path:
        return self.tmp / f"{device}.state.json"

    def control_file(self, device: str) -> Path:
        return self.tmp / f"{device}.control.json"

    def control(self, device: str, **control: Any) -> None:
        """Rewrite the fake device's control file (failures, delay, notReady, memberStatus)."""
        self.control_file(device).write_text(json.dumps(control))

    def device_state(self, device: str) -> dict[str, Any]:
        path = self.state_file(device)
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def listeners(self, device: str) -> dict[str, Any]:
        """``address:port`` → ``{"vip": key, "listener": name, "tree": document}``."""
        return dict(self.device_state(device).get("listeners") or {})

    def stored(self, device: str, where: str = "10.0.0.1:80") -> LoadBalancer:
        """The tree the device stores for its listener ``where``."""
        return stored(self.listeners(device)[where])

    def members(self, device: str, where: str = "10.0.0.1:80") -> dict[str, Member]:
        """The members the device stores behind its listener ``where``, by name."""
        return stored_members(self.listeners(device)[where])

    def add_device(self, name: str = "dev", **spec: Any) -> Obj:
        config = {
            "stateFile": str(self.state_file(name)),
            "controlFile": str(self.control_file(name)),
        }
        full = {"driver": "fake", "config": config, "addressPool": ["10.0.0.0/29"], **spec}
        return self.cluster.create("Device", name, full)

    async def start_worker(self, device: str = "dev", fence: int = 1) -> DeviceWorker:
        """The worker of ``device`` with its handle built and one probe done (no periodic
        tasks: tests call what they need)."""
        worker = DeviceWorker(
            device,
            fence=fence,
            settings=self.settings,
            kube=cast(Kube, None),
            views=self.views,
            reporter=self.reporter.as_reporter(),
            drivers=self.drivers,
            runner=self.runner,
            gate=self.gate,
            trigger=self._trigger,
        )
        self.workers[device] = worker
        await worker.refresh_handle()
        await worker.probe()
        return worker

    # ---- trees --------------------------------------------------------------------------------

    def add_tree(
        self,
        name: str = "web",
        *,
        members: dict[str, str] | None = None,
        monitor: bool = False,
        **vip_spec: Any,
    ) -> VipKey:
        """VIP ``name`` with a pool of the same name, ``members`` (name → address) and maybe a
        TCP monitor."""
        self.cluster.create("VIP", name, tree_spec("VIP", **vip_spec))
        self.cluster.create("Pool", name, tree_spec("Pool", vipRef=name))
        for member, address in (members if members is not None else {"m1": "10.1.0.1"}).items():
            self.cluster.create(
                "Member", member, tree_spec("Member", poolRef=name, address=address)
            )
        if monitor:
            self.cluster.create("HealthMonitor", name, tree_spec("HealthMonitor", poolRef=name))
        return (NS, name)

    async def bind(self, key: VipKey, device: str = "dev", address: str = "10.0.0.1") -> None:
        """What the controller's binder writes: the finalizer, then device and address."""
        vip = self.cluster.get("VIP", key[1], key[0])
        assert vip is not None
        assert await self.reporter.finalizer(vip, present=True)
        vip = self.cluster.get("VIP", key[1], key[0])
        assert vip is not None
        message = f"bound to device {device}, address {address}"
        desired = desired_status(
            vip.get("status") or {},
            phase="Pending",
            reason="Scheduled",
            message=message,
            generation=None,
            conditions=[Cond(SCHEDULED, True, "Scheduled", message)],
            extra={"device": device, "address": address},
        )
        assert await self.reporter.status(vip, desired)

    async def reconcile(self, key: VipKey = (NS, "web"), mode: Mode = Mode.APPLY) -> Result:
        return await self.reconciler(key, mode)

    def applies(self, device: str = "dev") -> int:
        return int(self.device_state(device).get("applies", 0))


async def until_settled(
    loops: TreeLoops, turns: Callable[[], int], quiet: float = 0.15, timeout: float = 5.0
) -> None:
    """Wait until no loop has run a turn for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    seen, since = turns(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError("the loops never settled")
        await asyncio.sleep(0.02)
        if turns() != seen:
            seen, since = turns(), time.monotonic()
