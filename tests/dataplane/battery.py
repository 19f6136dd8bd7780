"""The hostile input battery (issue 10): ``tests/data/hostile_specs.yaml`` against a real
operator, a real Device shared by tenants (any data plane: ``planes``), and two VIPs under load.

Used by ``test_hostile_battery.py`` (asserts) and ``bench/tenant.py`` (figures), both through
:func:`run`. ``Tenancy`` sets the stage: namespaces A (its VIP ``web`` with two members,
under a serial client), B (the hostile tenant, owner of the VIP tree ``victim`` the Member
cases join, under long-lived keep-alive connections), C (whose live trees the hostile
updates change) and the Device of the plane's driver they share, with an addressPool and
memberNetworks as an operator would set them. A case's ``expect`` holds for every driver
unless the case says otherwise under the driver's name (``envoy: {...}``).
Each round (``battery_rounds.Battery``) applies every case with
names of its own: creates and updates the API server refuses must come back with their
message; the others must each reach their phase, reason and message, with a Warning Event
about that very object (its uid).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
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

from helpers import GROUP, PLURALS, VERSION, Api, kubectl, wait_for

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "hostile_specs.yaml"
QUOTA = 8  # B's share: its own trees of a round (victim, the cases' own VIPs) stay under it
"""B's VIPs on the device (maxVIPsPerNamespace) when no VIP case is served (``quota_for``)."""
BASES = {  # YAML, filled like the cases
    "VIP": "{port: <<port>>, protocol: HTTP}",
    "Pool": "{vipRef: victim}",
    "Member": "{poolRef: victim, address: '<<backend>>', port: <<backend_port>>}",
    "HealthMonitor": "{poolRef: victim, type: TCP}",
    "L7Policy": "{vipRef: victim, action: {type: Forward, pools: [{poolRef: victim}]}}",
    "Device": "{driver: fake, config: {stateFile: '<<state_file>>'}, allowedNamespaces: []}",
}
LIVE_TREE = (  # kind, name suffix, spec (YAML, filled like the cases; <<tree>>: its name)
    ("VIP", "", "{port: <<port>>, protocol: HTTP}"),
    ("Pool", "", "{vipRef: <<tree>>, protocol: HTTP}"),
    ("Member", "-m0", "{poolRef: <<tree>>, address: '<<live_backend>>', port: <<live_port>>}"),
    ("HealthMonitor", "", "{poolRef: <<tree>>, type: TCP, delay: 2, timeout: 1}"),
)
"""The live tree an update case changes (tenant C's; the victim's has the same shape): one
object per kind, named after the tree plus the suffix, created in this order. Kinds to come
(L7 policies, TLS certificates): add their object here and their update cases to the YAML."""
_PLACEHOLDER = re.compile(r"<<(\w+)(?:\*(\d+))?>>")
# The modules beside this one (``sibling``) import it by this name, however it was loaded.
sys.modules.setdefault("lbaas_battery_battery", sys.modules[__name__])


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
    update: dict[str, Any] | None = None
    """A merge patch of a live object's spec instead of a create."""
    known: str | None = None
    """A problem found and not fixed yet: the case must still miss its outcome."""

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
    served = [e for e in raw if e["kind"] == "VIP" and "update" not in e
              and e.get(driver, e["expect"]).get("phase") == "Active"]  # fmt: skip
    return QUOTA + len(served)


def load_cases(values: dict[str, Any], round_: int = 1, driver: str = "haproxy") -> list[Case]:
    """The cases of round ``round_`` (as ``driver`` must answer them): every object name is
    the round's own."""
    values = {**values, "round": round_, "device_name_253": _long_name(values, round_)}
    raw = yaml.safe_load(fill(DATA.read_text(), values))
    cases = []
    for index, entry in enumerate(raw):
        kind, update = entry["kind"], entry.get("update")
        spec = {} if update is not None else yaml.safe_load(fill(BASES[kind], values))
        spec.update(entry.get("spec") or {})
        name = (entry.get("metadata") or {}).get("name")
        if name is None:
            prefix = "u" if update is not None else "h"
            name = f"{prefix}{index}-r{round_}"
            if kind == "Device":
                name = f"{values['device_prefix']}-{name}"
        parent, quota = entry.get("parent"), bool(entry.get("quota"))
        expect = entry.get(driver, entry["expect"])
        cases.append(Case(index, entry["name"], kind, name, spec, expect, parent,
                          quota, update, entry.get("known")))  # fmt: skip
    return cases


def _long_name(values: dict[str, Any], round_: int) -> str:
    return (f"{values['device_prefix']}-r{round_}-" + "d" * 253)[:253]


def live_tree(name: str, values: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, object name, spec) of a live tree named ``name``, in creation order."""
    filled = {**values, "tree": name}
    return [(kind, name + suffix, yaml.safe_load(fill(spec, filled))) for kind, suffix, spec in
            LIVE_TREE]  # fmt: skip


# ---- the stage -------------------------------------------------------------------------------


@dataclass
class Tenancy:
    """Tenants A, B and C on one Device of ``plane`` (``planes.Plane``); ``values`` fill the
    cases' placeholders."""

    api: Api
    plane: Any
    metrics_port: int
    a: str = field(default_factory=lambda: f"ta-{uuid.uuid4().hex[:6]}")
    b: str = field(default_factory=lambda: f"tb-{uuid.uuid4().hex[:6]}")
    c: str = field(default_factory=lambda: f"tc-{uuid.uuid4().hex[:6]}")
    device: str = field(default_factory=lambda: f"dp-shared-{uuid.uuid4().hex[:6]}")
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lbten-")))
    values: dict[str, Any] = field(default_factory=dict)
    web: tuple[str, int] = ("", 0)
    victim: tuple[str, int] = ("", 0)
    squatter: socket.socket | None = None
    quota: int = QUOTA

    def create(
        self, kind: str, name: str, namespace: str | None, spec: dict[str, Any]
    ) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
                "spec": spec}  # fmt: skip
        if namespace:
            return dict(
                self.api.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], body, field_validation="Strict"
                )
            )
        return dict(
            self.api.custom.create_cluster_custom_object(
                GROUP, VERSION, PLURALS[kind], body, field_validation="Strict"
            )
        )

    def patch(self, kind: str, name: str, namespace: str, spec: dict[str, Any]) -> None:
        """A merge patch of the spec, unknown fields refused as a create's are."""
        self.api.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"spec": spec},
            field_validation="Strict",
        )  # fmt: skip

    def tree(self, namespace: str, name: str, backends: list[tuple[str, int]], port: int,
             monitor: dict[str, Any]) -> None:  # fmt: skip
        self.create("VIP", name, namespace, {"port": port, "protocol": "HTTP"})
        self.create("Pool", name, namespace, {"vipRef": name, "protocol": "HTTP"})
        for i, (address, backend_port) in enumerate(backends):
            spec = {"poolRef": name, "address": address, "port": backend_port}
            self.create("Member", f"{name}-m{i}", namespace, spec)
        self.create("HealthMonitor", name, namespace, {"poolRef": name, **monitor})

    def start(self, backends: list[tuple[str, int]]) -> Tenancy:
        """Backends: two for A's VIP, one for B's victim, one for C's live trees."""
        hx = sibling("hxsupport")
        pool, member_network = f"{hx.NET}.60.0/25", f"{hx.NET}.61.0/24"
        for namespace in (self.a, self.b, self.c):
            kubectl("create", "namespace", namespace)
        spec = {
            "driver": self.plane.driver, "config": self.plane.config(self.state_dir),
            "addressPool": [pool], "memberNetworks": [member_network],
            "allowedNamespaces": [self.a, self.b, self.c],
            "capacity": {"maxVIPs": 50, "maxVIPsPerNamespace": self.quota},
        }  # fmt: skip
        self.create("Device", self.device, None, spec)
        self.api.wait_phase("Device", self.device, None, "Ready", 30)
        port = hx.free_port_in(pool)
        http = {"type": "HTTP", "urlPath": "/healthz", "delay": 1, "timeout": 1}
        self.tree(self.a, "web", backends[:2], port, http)
        self.tree(self.b, "victim", backends[2:3], port, {"type": "TCP", "delay": 2, "timeout": 1})
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
        self.web = (self.api.status("VIP", "web", self.a)["address"], port)
        self.victim = (self.api.status("VIP", "victim", self.b)["address"], port)
        squatter_address = f"{hx.NET}.60.120"
        self.squatter = socket.socket()
        self.squatter.bind((squatter_address, 0))
        self.squatter.listen()
        self.values = {
            "device": self.device, "a": self.a, "b": self.b, "a_address": self.web[0],
            "a_port": port, "port": port, "squatter_address": squatter_address,
            "squatter_port": self.squatter.getsockname()[1], "metrics_port": self.metrics_port,
            "backend": backends[2][0], "backend_port": backends[2][1],
            "live_backend": backends[3][0], "live_port": backends[3][1],
            "other_port": hx.free_port_in(pool), "net": hx.NET, "pool": pool,
            "member_network": member_network, "device_prefix": self.device, "quota": self.quota,
            "state_file": str(self.state_dir / "fake.json"),
            "pool65": ", ".join(f'"10.250.{i}.0/24"' for i in range(65)),
        }  # fmt: skip
        return self

    def reloads(self) -> int:
        """The device's disruptions (HAProxy reloads, Envoy rounds of LDS/CDS files)."""
        return int(self.plane.disruptions(self.state_dir))

    def stop(self) -> None:
        """Trees, then Devices (ours and the cases'), then the data plane and the state dir."""
        with contextlib.suppress(Exception):
            for namespace in (self.c, self.b, self.a):
                for kind in ("L7Policy", "HealthMonitor", "Member", "Pool", "VIP"):
                    for name in names(self.api, kind, namespace):
                        self.api.delete(kind, name, namespace)
            for namespace in (self.c, self.b, self.a):
                for name in names(self.api, "VIP", namespace):
                    self.api.wait_gone("VIP", name, namespace, 30)
            for name in device_names(self.api, self.device):
                self.api.delete("Device", name)
            wait_for(lambda: not device_names(self.api, self.device), 30, "devices gone")
        if self.squatter is not None:
            self.squatter.close()
        self.plane.stop(self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def sibling(name: str) -> ModuleType:
    """A module beside this file, loaded by path: bench/tenant.py uses these modules too,
    and there ``dataplane`` names bench/dataplane.py, not this package."""
    qualified = f"lbaas_battery_{name}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return sys.modules[qualified]


def hxsupport() -> ModuleType:
    return sibling("hxsupport")


def plane(driver: str) -> Any:
    """The ``planes`` adapter of ``driver`` (for bench/: tests take the ``plane`` fixture)."""
    return sibling("planes").PLANES[driver]


def names(api: Api, kind: str, namespace: str) -> list[str]:
    found = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
    return [item["metadata"]["name"] for item in found["items"]]


def device_names(api: Api, prefix: str) -> list[str]:
    found = api.custom.list_cluster_custom_object(GROUP, VERSION, "devices")["items"]
    return [d["metadata"]["name"] for d in found if d["metadata"]["name"].startswith(prefix)]


def matches(case: Case, obj: dict[str, Any] | None) -> bool:
    """The object shows the case's outcome (for an update: at its current generation)."""
    status = (obj or {}).get("status") or {}
    expect = case.expect
    if case.update is not None:
        generation = ((obj or {}).get("metadata") or {}).get("generation")
        if status.get("observedGeneration") != generation:
            return False
    if status.get("phase") != expect.get("phase", "Error"):
        return False
    if "reason" in expect and status.get("reason") != expect["reason"]:
        return False
    for kind, reason in (expect.get("condition") or {}).items():  # {type: reason}: False
        found = [c for c in status.get("conditions") or () if c.get("type") == kind]
        if not found or (found[0].get("status"), found[0].get("reason")) != ("False", reason):
            return False
    return str(expect.get("message", "")) in str(status.get("message", ""))


def pick(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status.get(k) for k in ("phase", "reason", "message", "observedGeneration")}


@contextlib.contextmanager
def staged(
    api: Api, plane: Any, metrics_port: int, backends: list[tuple[str, int]]
) -> Iterator[Tenancy]:
    stage = Tenancy(api, plane, metrics_port, quota=quota_for(plane.driver))
    try:
        yield stage.start(backends)
    finally:
        stage.stop()


@dataclass
class Outcome:
    """What :func:`run` saw: the problems (empty: every case as its table says) and the
    figures of the clients and the device."""

    cases: list[Case]
    rounds: int
    problems: list[str]
    load: Any  # hxsupport.Load: tenant A's serial client
    keepalive: Any  # keepalive.KeepAlive: on tenant B's victim
    reloads: int
    steps: list[tuple[str, int]]
    seconds: float
    served: dict[str, bool]
    """Update case → whether its VIP still answered while the update was refused."""
    known: list[str]
    """Known problems seen (cases with ``known`` that missed their outcome, as they must)."""


def run(stage: Tenancy, rounds: int, *, connections: int = 8) -> Outcome:
    """``rounds`` rounds of every case, under A's serial client and B's keep-alive ones."""
    battery = sibling("battery_rounds").Battery(stage)
    hx, keepalive = sibling("hxsupport"), sibling("keepalive")
    problems: list[str] = []
    cases: list[Case] = []
    reloads = stage.reloads()
    started = time.monotonic()
    with (
        hx.Load(*stage.web, max_requests=10_000_000, max_seconds=3600) as load,
        keepalive.KeepAlive(*stage.victim, connections=connections, max_seconds=3600) as kept,
    ):
        for number in range(1, rounds + 1):
            cases = load_cases(stage.values, number, stage.plane.driver)
            problems += [f"round {number}: {p}" for p in battery.round(cases)]
            battery.clear()
    return Outcome(
        cases, rounds, problems, load, kept, stage.reloads() - reloads, battery.reloads,
        time.monotonic() - started, battery.served, battery.known,
    )  # fmt: skip
