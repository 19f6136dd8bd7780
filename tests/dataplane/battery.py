"""The hostile input battery (issue 10): ``tests/data/hostile_specs.yaml`` against a real
operator, a real Device shared by tenants (any data plane: ``planes``), and tenant A's VIP
under load.

Used by ``test_hostile_battery.py`` (asserts) and ``bench/tenant.py`` (figures). ``Tenancy``
sets the stage: namespaces A (its VIP ``web`` with two members, the one under load), B (the
hostile tenant, owner of the VIP tree ``victim`` the Member cases join) and the Device of the
plane's driver they share, with an addressPool and memberNetworks as an operator would set
them. A case's ``expect`` holds for every driver unless the case says otherwise under the
driver's name (``envoy: {...}``: what that driver does differently).
``Battery.round`` then applies every case: the rejected ones must come back from the API
server with their message; the others are created together and must each reach their phase,
reason and message, with a Warning Event; the quota case last, once B's VIPs are bound.
``Battery.clear`` deletes what a round created, so the next round applies it all again.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from helpers import GROUP, LEASE_NAMESPACE, PLURALS, VERSION, Api, free_port, kubectl, wait_for

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "hostile_specs.yaml"
POOL = "127.0.60.0/25"
MEMBER_NETWORK = "127.0.61.0/24"
QUOTA = 4
"""B's VIPs on the device (maxVIPsPerNamespace) when no VIP case is served (``quota_for``)."""
BASES = {  # YAML, filled like the cases
    "VIP": "{port: <<port>>, protocol: HTTP}",
    "Pool": "{vipRef: victim}",
    "Member": "{poolRef: victim, address: '<<backend>>', port: <<backend_port>>}",
    "HealthMonitor": "{poolRef: victim, type: TCP}",
    "Device": "{driver: fake, config: {stateFile: '<<state_file>>'}, allowedNamespaces: []}",
}
_PLACEHOLDER = re.compile(r"<<(\w+)(?:\*(\d+))?>>")


@dataclass
class Case:
    index: int
    name: str
    kind: str
    obj_name: str
    spec: dict[str, Any]
    expect: dict[str, Any]
    parent: str | None = None
    quota: bool = False

    @property
    def rejected(self) -> bool:
        return "rejected" in self.expect


def fill(text: str, values: dict[str, Any]) -> str:
    """``<<name>>`` → its value; ``<<c*N>>`` → the character c, N times."""

    def one(match: re.Match[str]) -> str:
        name, times = match[1], match[2]
        return name * int(times) if times else str(values[name])

    return _PLACEHOLDER.sub(one, text)


def quota_for(driver: str) -> int:
    """``QUOTA`` plus one per VIP case ``driver`` serves (each takes a place of B's)."""
    raw = yaml.safe_load(_PLACEHOLDER.sub("0", DATA.read_text()))
    served = [e for e in raw if e["kind"] == "VIP" and e.get(driver, e["expect"]).get("phase")
              == "Active"]  # fmt: skip
    return QUOTA + len(served)


def load_cases(values: dict[str, Any], driver: str = "haproxy") -> list[Case]:
    raw = yaml.safe_load(fill(DATA.read_text(), values))
    cases = []
    for index, entry in enumerate(raw):
        kind = entry["kind"]
        spec = {**yaml.safe_load(fill(BASES[kind], values)), **(entry.get("spec") or {})}
        name = (entry.get("metadata") or {}).get("name")
        if name is None:
            name = f"{values['device_prefix']}-h{index}" if kind == "Device" else f"h{index}"
        parent, quota = entry.get("parent"), bool(entry.get("quota"))
        expect = entry.get(driver, entry["expect"])
        cases.append(Case(index, entry["name"], kind, name, spec, expect, parent, quota))
    return cases


# ---- the stage -------------------------------------------------------------------------------


@dataclass
class Tenancy:
    """Tenants A and B on one Device of ``plane`` (``planes.Plane``); ``values`` fill the
    cases' placeholders."""

    api: Api
    plane: Any
    metrics_port: int
    a: str = field(default_factory=lambda: f"ta-{uuid.uuid4().hex[:6]}")
    b: str = field(default_factory=lambda: f"tb-{uuid.uuid4().hex[:6]}")
    device: str = field(default_factory=lambda: f"dp-shared-{uuid.uuid4().hex[:6]}")
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lbten-")))
    values: dict[str, Any] = field(default_factory=dict)
    web: tuple[str, int] = ("", 0)
    squatter: socket.socket | None = None
    quota: int = QUOTA

    def create(self, kind: str, name: str, namespace: str | None, spec: dict[str, Any]) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
                "spec": spec}  # fmt: skip
        if namespace:
            self.api.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], body, field_validation="Strict"
            )
        else:
            self.api.custom.create_cluster_custom_object(
                GROUP, VERSION, PLURALS[kind], body, field_validation="Strict"
            )

    def tree(self, namespace: str, name: str, backends: list[tuple[str, int]], port: int,
             monitor: dict[str, Any]) -> None:  # fmt: skip
        self.create("VIP", name, namespace, {"port": port, "protocol": "HTTP"})
        self.create("Pool", name, namespace, {"vipRef": name, "protocol": "HTTP"})
        for i, (address, backend_port) in enumerate(backends):
            spec = {"poolRef": name, "address": address, "port": backend_port}
            self.create("Member", f"{name}-m{i}", namespace, spec)
        self.create("HealthMonitor", name, namespace, {"poolRef": name, **monitor})

    def start(self, backends: list[tuple[str, int]]) -> Tenancy:
        for namespace in (self.a, self.b):
            kubectl("create", "namespace", namespace)
        spec = {
            "driver": self.plane.driver, "config": self.plane.config(self.state_dir),
            "addressPool": [POOL],
            "memberNetworks": [MEMBER_NETWORK], "allowedNamespaces": [self.a, self.b],
            "capacity": {"maxVIPs": 50, "maxVIPsPerNamespace": self.quota},
        }  # fmt: skip
        self.create("Device", self.device, None, spec)
        self.api.wait_phase("Device", self.device, None, "Ready", 30)
        port = free_port("127.0.60.1")
        http = {"type": "HTTP", "urlPath": "/healthz", "delay": 1, "timeout": 1}
        self.tree(self.a, "web", backends[:2], port, http)
        self.tree(self.b, "victim", backends[2:], port, {"type": "TCP", "delay": 2, "timeout": 1})
        for namespace, name in ((self.a, "web"), (self.b, "victim")):
            self.api.wait_phase("VIP", name, namespace, "Active", 30)
        # A second Pool (or monitor) of VIP victim loses to the older one; creationTimestamp
        # has whole seconds and ties go by name ("h63" < "victim"): let the base tree be a
        # second older than anything a case creates.
        created = self.api.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.b, PLURALS["Pool"], "victim"
        )["metadata"]["creationTimestamp"]
        born = datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, born + 1.1 - time.time()))
        status = self.api.status("VIP", "web", self.a)
        self.web = (status["address"], port)
        self.squatter = socket.socket()
        self.squatter.bind(("127.0.60.120", 0))
        self.squatter.listen()
        self.values = {
            "device": self.device, "a": self.a, "b": self.b, "a_address": self.web[0],
            "a_port": port, "port": port, "squatter_address": "127.0.60.120",
            "squatter_port": self.squatter.getsockname()[1], "metrics_port": self.metrics_port,
            "backend": backends[2][0], "backend_port": backends[2][1],
            "device_prefix": self.device, "quota": self.quota,
            "state_file": str(self.state_dir / "fake.json"),
            "device_name_253": (self.device + "-" + "d" * 253)[:253],
            "pool65": ", ".join(f'"10.250.{i}.0/24"' for i in range(65)),
        }  # fmt: skip
        return self

    def reloads(self) -> int:
        """The device's disruptions (HAProxy reloads, Envoy rounds of LDS/CDS files)."""
        return int(self.plane.disruptions(self.state_dir))

    def stop(self) -> None:
        """Trees, then Devices (ours and the cases'), then the data plane and the state dir."""
        with contextlib.suppress(Exception):
            for namespace in (self.b, self.a):
                for kind in ("HealthMonitor", "Member", "Pool", "VIP"):
                    for name in names(self.api, kind, namespace):
                        self.api.delete(kind, name, namespace)
            for namespace in (self.b, self.a):
                for name in names(self.api, "VIP", namespace):
                    self.api.wait_gone("VIP", name, namespace, 30)
            for name in device_names(self.api, self.device):
                self.api.delete("Device", name)
            wait_for(lambda: not device_names(self.api, self.device), 30, "devices gone")
        if self.squatter is not None:
            self.squatter.close()
        self.plane.stop(self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _by_path(name: str) -> ModuleType:
    """A module beside this file, loaded by path: bench/tenant.py uses this module too, and
    there ``dataplane`` names bench/dataplane.py, not this package."""
    key = f"lbaas_battery_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def hxsupport() -> ModuleType:
    return _by_path("hxsupport")


def plane(driver: str) -> Any:
    """The ``planes`` adapter of ``driver`` (for bench/: tests take the ``plane`` fixture)."""
    return _by_path("planes").PLANES[driver]


def names(api: Api, kind: str, namespace: str) -> list[str]:
    found = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
    return [item["metadata"]["name"] for item in found["items"]]


def device_names(api: Api, prefix: str) -> list[str]:
    found = api.custom.list_cluster_custom_object(GROUP, VERSION, "devices")["items"]
    return [d["metadata"]["name"] for d in found if d["metadata"]["name"].startswith(prefix)]


# ---- the battery -----------------------------------------------------------------------------


@dataclass
class Battery:
    stage: Tenancy
    cases: list[Case]
    created: list[tuple[str, str, str | None]] = field(default_factory=list)
    reloads: list[tuple[str, int]] = field(default_factory=list)
    """(step, device reloads it caused), in order."""

    def _step(self, name: str, before: int) -> int:
        now = self.stage.reloads()
        self.reloads.append((name, now - before))
        return now

    def round(self) -> list[str]:
        """Apply every case once; the problems found (empty: all as expected)."""
        before = self.stage.reloads()
        problems = [p for case in self.cases if case.rejected for p in self._reject(case)]
        before = self._step("rejected", before)
        waiting = [c for c in self.cases if not c.rejected and not c.quota]
        for case in waiting:
            self._create(case)
        problems += self._outcomes(waiting, timeout=45)
        before = self._step("operator cases", before)
        for case in (c for c in self.cases if c.quota):
            problems += self._quota(case)
        self._step("quota", before)
        return problems

    def _reject(self, case: Case) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        try:
            self._create(case)
        except ApiException as exc:
            message = json.loads(exc.body or "{}").get("message", exc.body)
            if exc.status in (400, 422) and case.expect["rejected"] in message:
                return []
            return [f"{case.name}: rejected with {exc.status} {message!r}"]
        return [f"{case.name}: accepted by the API server"]

    def _namespace(self, case: Case) -> str | None:
        return None if case.kind == "Device" else self.stage.b

    def _create(self, case: Case) -> None:
        """Create the case's object; with ``parent: own``, its Pool and VIP after it, so the
        device sees the whole tree at once (a VIP applied alone first would be a legitimate
        change, and reload the device)."""
        ns, spec = self._namespace(case), dict(case.spec)
        if case.parent == "own":
            spec["poolRef" if case.kind == "HealthMonitor" else "vipRef"] = case.obj_name
        self.stage.create(case.kind, case.obj_name, ns, spec)
        self.created.append((case.kind, case.obj_name, ns))
        if case.parent == "own":
            self.stage.create("Pool", case.obj_name, ns, {"vipRef": case.obj_name})
            self.created.append(("Pool", case.obj_name, ns))
            self.stage.create("VIP", case.obj_name, ns, {"port": self.stage.values["port"]})
            self.created.append(("VIP", case.obj_name, ns))

    def _outcomes(self, cases: list[Case], timeout: float) -> list[str]:
        """Wait until every case shows its outcome (or the timeout), then check the Events."""
        deadline = time.monotonic() + timeout
        pending = {c.index: c for c in cases}
        last: dict[int, dict[str, Any]] = {}
        while pending and time.monotonic() < deadline:
            for case in list(pending.values()):
                status = self.stage.api.status(case.kind, case.obj_name, self._namespace(case))
                last[case.index] = status
                if matches(case, status):
                    del pending[case.index]
            time.sleep(0.3)
        problems = [
            f"{c.name}: {c.kind} {c.obj_name[:60]} shows {pick(last.get(c.index, {}))},"
            f" expected {c.expect}"
            for c in pending.values()
        ]
        return problems + self._events([c for c in cases if c.index not in pending])

    def _events(self, cases: list[Case]) -> list[str]:
        core = self.stage.api.core
        seen = {
            (e.involved_object.name, e.reason)
            for ns in (self.stage.b, LEASE_NAMESPACE)
            for e in core.list_namespaced_event(ns, field_selector="type=Warning").items
        }
        return [
            f"{c.name}: no Warning Event {c.expect['reason']} about {c.obj_name[:60]}"
            for c in cases
            if c.expect.get("phase", "Error") == "Error"
            and (c.obj_name, c.expect["reason"]) not in seen
        ]

    def _quota(self, case: Case) -> list[str]:
        """Fill B's share of the device up to the quota, then one more: that one is refused."""
        stage, b = self.stage, self.stage.b
        bound = [
            n for n in names(stage.api, "VIP", b)
            if stage.api.status("VIP", n, b).get("device") == stage.device
        ]  # fmt: skip
        for i in range(stage.quota - len(bound)):
            name = f"filler{i}"
            stage.create("VIP", name, b, {"port": stage.values["port"]})
            self.created.append(("VIP", name, b))
            stage.api.wait_phase("VIP", name, b, "Active", 30)
        self._create(case)
        return self._outcomes([case], timeout=20)

    def clear(self) -> None:
        """Delete what the last round created. VIPs first, newest first: a tree leaves the
        device at once (a child deleted first could make a refused tree valid, and applied,
        just before its VIP goes), and the VIP refused for the quota goes before the ones
        whose leaving would make room for it (it would be bound and applied meanwhile)."""
        before = self.stage.reloads()
        order = {"VIP": 0, "Pool": 1, "HealthMonitor": 2, "Member": 3, "Device": 4}
        newest_first = list(enumerate(self.created))[::-1]
        for _, (kind, name, ns) in sorted(newest_first, key=lambda e: (order[e[1][0]], -e[0])):
            self.stage.api.delete(kind, name, ns)
        for kind, name, ns in self.created:
            if kind in ("VIP", "Device"):
                self.stage.api.wait_gone(kind, name, ns, 30)
        self.created.clear()
        self._step("clear", before)


def matches(case: Case, status: dict[str, Any]) -> bool:
    expect = case.expect
    if status.get("phase") != expect.get("phase", "Error"):
        return False
    if "reason" in expect and status.get("reason") != expect["reason"]:
        return False
    return str(expect.get("message", "")) in str(status.get("message", ""))


def pick(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status.get(k) for k in ("phase", "reason", "message")}


@contextlib.contextmanager
def staged(
    api: Api, plane: Any, metrics_port: int, backends: list[tuple[str, int]]
) -> Iterator[Tenancy]:
    stage = Tenancy(api, plane, metrics_port, quota=quota_for(plane.driver))
    try:
        yield stage.start(backends)
    finally:
        stage.stop()
