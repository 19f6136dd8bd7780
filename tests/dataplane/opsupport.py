"""Helpers of the data-plane tests that run through the operator (VIP trees deployed through
the API: :class:`Site`, :func:`deploy`; the Devices they run on: :func:`operator_devices`, any
data plane of ``planes``) and of the self-healing ones (issue 11).

The self-healing tests put their backends on ``<net>.71.x`` (VIPs come from
``<net>.70.x`` address pools), so these tests share no address with the other data-plane
tests. Also: an HAProxy binary a test can take away (:class:`Binary`), Events and metrics of
the operator, who listens where (:func:`listeners`), and what a device must serve
(:func:`desired_lb`, :func:`serves_exactly`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataplane.hxsupport import (
    Backend,
    EchoBackend,
    Load,
    OperatorDevice,
    free_port_in,
    names_in,
    serving,
    spread,
    vip_of,
    wait_applied,
)
from dataplane.planes import Plane

from helpers import LEASE_NAMESPACE, Api, OperatorProcess, wait_for
from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.haproxy import HAProxyDriver, runtime
from lbaas.drivers.haproxy.preflight import listening_pids
from lbaas.drivers.haproxy.render import GlobalSettings, render_global, render_vip
from lbaas.drivers.model import LoadBalancer
from lbaas.trees import translate
from lbaas.trees.tree import build_tree

BACKEND_THIRD = 71
"""Backends listen on ``<net>.71.x``."""
VIP_PREFIX = "127.0.70."
TREE_KINDS = ("L7Policy", "HealthMonitor", "Member", "Pool", "VIP")
"""Deleted in this order at teardown."""


@dataclass
class Site:
    """One VIP tree created through the API, with the backends behind its members."""

    api: Api
    namespace: str
    name: str
    device: OperatorDevice
    address: str
    port: int
    members: dict[str, Backend | EchoBackend]  # Member name → its backend

    @property
    def vip(self) -> tuple[str, int]:
        return self.address, self.port

    def status(self, kind: str = "VIP", name: str | None = None) -> dict[str, Any]:
        return self.api.status(kind, name or self.name, self.namespace)

    def member(self, backend: Backend | EchoBackend) -> str:
        return next(name for name, b in self.members.items() if b is backend)

    def patch_member(self, backend: Backend | EchoBackend, **spec: Any) -> None:
        name = self.member(backend)
        self.api.patch_spec("Member", name, self.namespace, spec)
        wait_applied(self.api, "Member", name, self.namespace)

    def backend_names(self) -> set[str]:
        return {b.name for b in self.members.values()}

    def serves_all(self, requests: int = 0) -> bool:
        """Every member answers (round robin: ``requests`` defaults to 3 per member)."""
        want = self.backend_names()
        return set(spread(*self.vip, requests or 3 * len(want))) == want


def deploy(
    api: Api,
    namespace: str,
    device: OperatorDevice,
    name: str,
    backends: Sequence[Backend] | Sequence[EchoBackend],
    *,
    pool: dict[str, Any] | None = None,
    monitor: dict[str, Any] | None = None,
    member_spec: dict[int, dict[str, Any]] | None = None,
    port: int | None = None,
    **vip_spec: Any,
) -> Site:
    """VIP, Pool, one Member per backend (``member_spec`` adds to the i-th) and a
    HealthMonitor, created through the API and all Active on ``device``; the VIP's address is
    the one the operator allocated."""
    protocol = vip_spec.setdefault("protocol", "HTTP")
    port = port or free_port_in(device.address_pool)
    members: dict[str, Backend | EchoBackend] = {f"{name}-{b.name}": b for b in backends}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("VIP", name, {"port": port, **vip_spec}),
        ("Pool", name, {"vipRef": name, "protocol": protocol, **(pool or {})}),
    ]
    for i, (member, b) in enumerate(members.items()):
        spec = {"poolRef": name, "address": b.address, "port": b.port}
        specs.append(("Member", member, {**spec, **(member_spec or {}).get(i, {})}))
    if monitor:
        specs.append(("HealthMonitor", name, {"poolRef": name, **monitor}))
    for kind, obj_name, spec in specs:
        api.create(
            {"kind": kind, "metadata": {"name": obj_name, "namespace": namespace}, "spec": spec}
        )
    for kind, obj_name, _ in specs:
        wait_applied(api, kind, obj_name, namespace)
    status = api.status("VIP", name, namespace)
    assert status["device"] == device.name, status
    return Site(api, namespace, name, device, status["address"], port, members)


class Binary:
    """An HAProxy binary a test can take away: a script that runs the real one (``exec``, so
    the master's command line and its reloads are the real binary's) unless it is broken."""

    def __init__(self, real: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "haproxy"
        self.flag = directory / "broken"
        self.path.write_text(
            "#!/bin/sh\n"
            f'if [ -e "{self.flag}" ]; then\n'
            '  echo "[ALERT]    (0) : the haproxy binary was taken away by the test" >&2\n'
            "  exit 1\n"
            "fi\n"
            f'exec "{real}" "$@"\n'
        )
        self.path.chmod(0o755)

    def take_away(self) -> None:
        self.flag.touch()

    def give_back(self) -> None:
        self.flag.unlink(missing_ok=True)


def kill_master(device: OperatorDevice) -> int:
    """SIGKILL the device's HAProxy master; its pid."""
    pid = device.master_pid()
    assert pid is not None, "no HAProxy master"
    os.kill(pid, signal.SIGKILL)
    return pid


def outage(load: Load, killed: float) -> float | None:
    """Seconds from the kill to the first request that succeeded after one that failed (the
    old worker may answer a moment after the kill); None while traffic is not back."""
    failed = next((t for t, ok in load.events if t >= killed and not ok), None)
    if failed is None:
        return 0.0 if load.first_success_after(killed + 1) else None
    back = load.first_success_after(failed)
    return None if back is None else back - killed


def boot_clock() -> float:
    """Seconds since boot, the clock of ``/proc/<pid>/stat`` start times."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def started_at(pid: int) -> float:
    """When ``pid`` started, in :func:`boot_clock` seconds (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def operator_devices(
    api: Api, namespace: str, plane: Plane
) -> Iterator[Callable[..., OperatorDevice]]:
    """Devices of ``plane``'s driver (managed, private stateDir) that only this test's
    namespace may use, created through the API and Ready. At teardown the namespace's VIP
    trees and the devices are deleted through the API, then any data plane left is killed via
    its pid file."""
    made: list[OperatorDevice] = []

    def make(
        address_pool: str, config: dict[str, Any] | None = None, **spec: Any
    ) -> OperatorDevice:
        state_dir = Path(tempfile.mkdtemp(prefix="lbop-", dir="/tmp"))
        name = f"{plane.driver[:2]}-{namespace}-{uuid.uuid4().hex[:4]}"
        device = OperatorDevice(api, name, state_dir, address_pool)
        made.append(device)
        api.create(
            {
                "kind": "Device",
                "metadata": {"name": name},
                "spec": {
                    "driver": plane.driver,
                    "config": {**plane.config(state_dir), **(config or {})},
                    "addressPool": [address_pool],
                    "allowedNamespaces": [namespace],
                    # The backends run on this host's loopback: allowed explicitly, as a
                    # device's member networks must (loopback is refused by default).
                    "memberNetworks": ["127.0.0.0/8"],
                    **spec,
                },
            }
        )
        api.wait_phase("Device", name, None, "Ready", 30)
        return device

    try:
        yield make
    finally:
        try:
            for kind in TREE_KINDS:
                for name in names_in(api, kind, namespace):
                    api.delete(kind, name, namespace)
            for name in names_in(api, "VIP", namespace):
                with contextlib.suppress(AssertionError):
                    api.wait_gone("VIP", name, namespace, 30)
            for device in made:
                api.delete("Device", device.name)
            for device in made:
                with contextlib.suppress(AssertionError):
                    wait_for(lambda d=device: api.get("Device", d.name) is None, 30, "gone")
        finally:
            for device in made:
                plane.stop(device.state_dir)
                shutil.rmtree(device.state_dir, ignore_errors=True)


# ---- Events and metrics ----------------------------------------------------------------------


def event_messages(api: Api, namespace: str | None, name: str, reason: str) -> list[str]:
    """Messages of the Warning Events ``reason`` about ``name`` (Devices: in the Lease
    namespace, where the operator posts Events of cluster-scoped objects)."""
    found = api.events(namespace or LEASE_NAMESPACE, name)
    return [str(e.message) for e in found if e.reason == reason]


def metric(operator: OperatorProcess, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(operator.metrics())
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# ---- who listens where -------------------------------------------------------------------------


def state_dir_of(pid: int) -> str:
    """The ``-f <stateDir>/haproxy.cfg`` of an HAProxy process ("" for another process)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return ""
    configs = [a for a in argv if a.endswith("/haproxy.cfg")]
    return str(Path(configs[0]).parent) if configs else ""


def listeners(prefix: str = VIP_PREFIX) -> dict[tuple[str, int], set[str]]:
    """Listening sockets on ``prefix``* → the state dirs of the HAProxy processes holding them
    (a master and its workers share their sockets: one state dir per HAProxy)."""
    found: dict[tuple[str, int], set[str]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":
            continue
        hex_address, _, hex_port = fields[1].partition(":")
        address = ".".join(str(b) for b in reversed(bytes.fromhex(hex_address)))
        if not address.startswith(prefix):
            continue
        port = int(hex_port, 16)
        found[(address, port)] = {state_dir_of(p) for p in listening_pids(address, port)}
    return found


# ---- what a device must serve -----------------------------------------------------------------


def _items(api: Api, kind: str, namespace: str) -> list[dict[str, Any]]:
    from helpers import GROUP, PLURALS, VERSION

    found = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
    for item in found["items"]:
        item.setdefault("kind", kind)
    return list(found["items"])


def desired_lb(api: Api, namespace: str, vip: str) -> LoadBalancer:
    """The tree of ``vip`` as the API holds it now, at the address in its status."""
    obj = api.get("VIP", vip, namespace)
    assert obj is not None
    pools = [p for p in _items(api, "Pool", namespace) if p["spec"].get("vipRef") == vip]
    members = _items(api, "Member", namespace)
    monitors = _items(api, "HealthMonitor", namespace)
    names = [p["metadata"]["name"] for p in pools]
    tree = build_tree(
        obj,
        pools,
        {n: [m for m in members if m["spec"].get("poolRef") == n] for n in names},
        {n: [m for m in monitors if m["spec"].get("poolRef") == n] for n in names},
    )
    return translate.load_balancer(tree, str(obj["status"]["address"]))


def handle(device: OperatorDevice) -> DeviceHandle:
    """A handle on the device for checks from the test (fence 0: never refused)."""
    config = {"stateDir": str(device.state_dir), "managed": True}
    return DeviceHandle(device.name, driver="haproxy", config=config)


def serves_exactly(device: OperatorDevice, lbs: Sequence[LoadBalancer]) -> None:
    """HAProxy loaded exactly the configuration of ``lbs`` (files, running process, servers),
    and requests reach exactly the members with a weight."""
    settings = GlobalSettings(
        str(device.state_dir / "haproxy.sock"),
        str(device.state_dir / "server-state"),
        certs_dir=str(device.state_dir / "certs"),
        state_dir=str(device.state_dir),
    )
    fragments = sorted((render_vip(lb) for lb in lbs), key=lambda f: f.key)
    assert device.config() == render_global(settings) + "".join(f.text for f in fragments)
    driver = HAProxyDriver()
    try:
        assert driver.in_sync(handle(device)), "HAProxy did not load the files"
        for lb, fragment in zip(sorted(lbs, key=lambda lb: lb.key), fragments, strict=True):
            assert driver.verify(handle(device), lb) == [], lb.key
            for backend, pool in zip(fragment.backends, lb.pools, strict=True):
                running = runtime.servers_state(device.state_dir / "haproxy.sock", backend.name)
                assert {s: running[s].weight for s in running} == {
                    m.name: m.weight for m in pool.members
                }
            names = serving(lb)
            answered = set(spread(*vip_of(lb), 4 * len(names)))
            assert len(answered) == len(names), (lb.key, answered, names)
    finally:
        driver.close()
