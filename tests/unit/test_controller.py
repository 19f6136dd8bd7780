"""The controller role without an API server: binding VIPs (``Binder``) and children whose
parent is missing (``Orphans``), woken by informer changes through the real ``Controller``."""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lbaas.controller import Controller
from lbaas.drivers.registry import DriverRegistry
from lbaas.kube.resources import LEASES
from lbaas.placement.binder import Binder
from lbaas.placement.ownerless import Ownerless
from unit.fakes import (
    NS,
    Cluster,
    FakeInformer,
    FakeReporter,
    VipKey,
    async_test,
    eventually,
    settings,
    tree_spec,
)


class Env:
    def __init__(self, tmp: Path, **overrides: Any) -> None:
        self.tmp = tmp
        self.cluster = Cluster()
        self.reporter = FakeReporter(self.cluster)
        self.settings = settings(**overrides)
        self.controller = Controller(
            settings=self.settings,
            views=self.cluster.views,
            reporter=self.reporter.as_reporter(),
            drivers=DriverRegistry(),
        )

    def device(self, name: str, ready: bool = True, **spec: Any) -> None:
        full = {
            "driver": "fake",
            "config": {"stateFile": str(self.tmp / f"{name}.json")},
            "addressPool": ["10.0.0.0/29"],
            **spec,
        }
        status = {"phase": "Ready" if ready else "NotReady"}
        self.cluster.create("Device", name, full, status=status)

    def vip(self, name: str, namespace: str = NS, **spec: Any) -> None:
        self.cluster.create("VIP", name, tree_spec("VIP", **spec), namespace=namespace)

    def status(self, name: str, kind: str = "VIP", namespace: str = NS) -> dict[str, Any]:
        return self.cluster.status(kind, name, namespace)

    def bound(self, name: str) -> tuple[str, str] | None:
        status = self.status(name)
        return (status["device"], status["address"]) if status.get("device") else None

    def reason(self, name: str, kind: str = "VIP", namespace: str = NS) -> str | None:
        return self.status(name, kind, namespace).get("reason")


@asynccontextmanager
async def leading(tmp: Path, **overrides: Any) -> AsyncIterator[Env]:
    env = Env(tmp, **overrides)
    await env.controller.start_leading()
    try:
        yield env
    finally:
        await env.controller.stop_leading()


# ---- binding -----------------------------------------------------------------------------------


@async_test
async def test_a_vip_waiting_for_a_device_binds_when_one_appears(tmp_path: Path) -> None:
    async with leading(tmp_path) as env:
        env.vip("web")
        await eventually(lambda: env.reason("web") == "NoEligibleDevice")
        assert env.status("web")["phase"] == "Error"
        assert "no Device exists" in env.status("web")["message"]
        (event,) = env.reporter.events_of("VIP", "web", "NoEligibleDevice")
        assert event.type == "Warning"
        env.device("small", ready=False)
        await eventually(lambda: "not Ready" in env.status("web")["message"])
        assert env.bound("web") is None
        env.cluster.patch_status(env.cluster.get("Device", "small") or {}, {"phase": "Ready"})
        assert await eventually(lambda: env.bound("web")) == ("small", "10.0.0.1")
        status = env.status("web")
        assert (status["phase"], status["reason"]) == ("Pending", "Scheduled")
        assert "web" not in {k[1] for k in env.controller.binder.unscheduled}
        vip = env.cluster.get("VIP", "web")
        assert vip is not None and vip["metadata"]["finalizers"] == ["lbaas.dev/finalizer"]


def count_overlaps(binder: Binder) -> list[VipKey]:
    """Wrap ``binder.bind``: the keys found being bound twice at once."""
    running: set[VipKey] = set()
    overlaps: list[VipKey] = []
    bind = binder.bind

    async def counted(key: VipKey, **kw: Any) -> bool:
        if key in running:
            overlaps.append(key)
        running.add(key)
        try:
            return await bind(key, **kw)
        finally:
            running.discard(key)

    binder.bind = counted  # type: ignore[method-assign]
    return overlaps


@async_test
async def test_a_namespace_label_change_wakes_a_waiting_vip(tmp_path: Path) -> None:
    async with leading(tmp_path) as env:
        env.cluster.create("Namespace", NS, {})
        env.device("gold", namespaceSelector={"matchLabels": {"tier": "gold"}})
        env.vip("web")
        await eventually(lambda: env.reason("web") == "NoEligibleDevice")
        assert "not allowed for namespace team-a" in env.status("web")["message"]
        env.cluster.set_labels("Namespace", NS, {"tier": "gold"})
        assert await eventually(lambda: env.bound("web")) == ("gold", "10.0.0.1")


@async_test
async def test_concurrent_binds_never_share_an_address_or_overfill(tmp_path: Path) -> None:
    async with leading(tmp_path) as env:
        overlaps = count_overlaps(env.controller.binder)
        env.reporter.latency = 0.01  # writes take a while: binds overlap
        env.device("a")  # 10.0.0.1-6
        env.device("b", addressPool=["10.0.1.0/30"], capacity={"maxVIPs": 1})  # room for 1
        names = [f"v{i}" for i in range(9)]
        for name in names:
            env.vip(name)
        settled = ["Scheduled"] * 7 + ["NoEligibleDevice"] * 2
        await eventually(lambda: sorted(str(env.reason(n)) for n in names) == sorted(settled))
        await asyncio.sleep(0.2)  # retries after a lost race, if any, would show now
        bound = {n: b for n in names if (b := env.bound(n)) is not None}
        assert len(bound) == 7, sorted(bound.items())
        assert len(set(bound.values())) == 7, bound
        assert sum(1 for device, _ in bound.values() if device == "b") == 1
        for device, address in bound.values():
            pool = "10.0.0.0/29" if device == "a" else "10.0.1.0/30"
            assert ipaddress.ip_address(address) in ipaddress.ip_network(pool)
        assert overlaps == [], "one VIP bound by two workers at once"
        waiting = [n for n in names if n not in bound]
        assert [env.reason(n) for n in waiting] == ["NoEligibleDevice"] * 2
        # A VIP leaving a device frees its address for a waiting one.
        gone = next(n for n in bound if bound[n][0] == "a")
        vip = env.cluster.get("VIP", gone)
        assert vip is not None
        env.cluster.delete("VIP", gone)
        await env.reporter.finalizer(env.cluster.get("VIP", gone), present=False)  # the agent
        await eventually(lambda: sum(1 for n in waiting if env.bound(n)) == 1)
        now = [env.bound(n) for n in names if n != gone and env.bound(n)]
        assert len(now) == 7 and len(set(now)) == 7


@async_test
async def test_concurrent_binds_spread_over_equal_devices(tmp_path: Path) -> None:
    """VIPs arriving together are bound by concurrent workers: each must count what the others
    reserved while it waited for the driver's ``select_device`` (once, all of them went to the
    first device by name)."""
    async with leading(tmp_path) as env:
        env.reporter.latency = 0.01  # writes take a while: binds overlap
        for name in ("a", "b", "c"):
            env.device(name, addressPool=[f"10.0.{ord(name)}.0/28"])
        names = [f"v{i}" for i in range(9)]
        for name in names:
            env.vip(name)
        await eventually(lambda: all(env.bound(n) for n in names))
        per_device = Counter(bound[0] for n in names if (bound := env.bound(n)))
        assert per_device == {"a": 3, "b": 3, "c": 3}, per_device


@async_test
async def test_tenant_rules_say_which_rule_refused(tmp_path: Path) -> None:
    async with leading(tmp_path) as env:
        env.device("dev", capacity={"maxVIPs": 10, "maxVIPsPerNamespace": 1})
        env.vip("first", address="10.0.0.3")
        await eventually(lambda: env.bound("first"))
        env.vip("same-listener", namespace="team-b", address="10.0.0.3")
        env.vip("outside", namespace="team-c", address="192.168.7.7")
        env.vip("second")  # team-a's quota is 1
        refused = {"same-listener": "team-b", "outside": "team-c", "second": NS}
        await eventually(lambda: all(env.reason(n, namespace=ns) for n, ns in refused.items()))
        status = env.status("same-listener", namespace="team-b")
        assert status["reason"] == "AddressInUse"
        assert "10.0.0.3:80 is already used by VIP team-a/first" in status["message"]
        status = env.status("outside", namespace="team-c")
        assert status["reason"] == "AddressNotAllowed"
        assert "addressPool" in status["message"]
        assert env.reason("second") == "QuotaExceeded"
        assert "maxVIPsPerNamespace is 1" in env.status("second")["message"]
        # Another port on the same address is another listener: fine.
        env.vip("other-port", namespace="team-b", address="10.0.0.3", port=81)
        assert await eventually(lambda: env.status("other-port", namespace="team-b").get("device"))


# ---- children without a parent -----------------------------------------------------------------


@async_test
async def test_an_orphan_waits_then_turns_parent_not_found(tmp_path: Path) -> None:
    async with leading(tmp_path, parent_timeout=0.3) as env:
        env.cluster.create("Pool", "lonely", tree_spec("Pool", vipRef="nowhere"))
        env.cluster.create("Member", "m1", tree_spec("Member", poolRef="no-pool"))
        await eventually(lambda: env.reason("lonely", "Pool") == "WaitingForParent")
        status = env.status("lonely", "Pool")
        assert status["phase"] == "Pending" and "VIP nowhere does not exist" in status["message"]
        assert env.reason("m1", "Member") == "WaitingForParent"
        assert not env.reporter.events
        await eventually(lambda: env.reason("lonely", "Pool") == "ParentNotFound", timeout=3)
        await eventually(lambda: env.reason("m1", "Member") == "ParentNotFound", timeout=3)
        assert env.status("lonely", "Pool")["phase"] == "Error"
        (event,) = env.reporter.events_of("Pool", "lonely", "ParentNotFound")
        assert event.type == "Warning" and "VIP nowhere not found" in event.message
        await asyncio.sleep(0.5)
        assert len(env.reporter.events_of("Pool", "lonely")) == 1, "said once"


@async_test
async def test_an_orphan_reports_the_generation_it_describes(tmp_path: Path) -> None:
    """A child moved to another missing parent says so, for its new generation (its status
    kept the first parent's message and generation: a status describing an old spec)."""
    async with leading(tmp_path, parent_timeout=0.3) as env:
        env.cluster.create("Pool", "lonely", tree_spec("Pool", vipRef="nowhere"))
        await eventually(lambda: env.reason("lonely", "Pool") == "ParentNotFound", timeout=3)
        assert env.status("lonely", "Pool")["observedGeneration"] == 1
        env.cluster.update_spec("Pool", "lonely", vipRef="elsewhere")

        def moved() -> bool:
            status = env.status("lonely", "Pool")
            return status.get("observedGeneration") == 2 and "elsewhere" in status["message"]

        await eventually(moved, timeout=3)
        assert env.status("lonely", "Pool")["reason"] in ("WaitingForParent", "ParentNotFound")


@async_test
async def test_a_parent_that_appears_in_time_stops_the_timer(tmp_path: Path) -> None:
    async with leading(tmp_path, parent_timeout=0.4) as env:
        env.cluster.create("Pool", "web", tree_spec("Pool", vipRef="web"))
        await eventually(lambda: env.reason("web", "Pool") == "WaitingForParent")
        env.vip("web")
        await asyncio.sleep(0.8)
        assert env.reason("web", "Pool") != "ParentNotFound"
        assert not env.reporter.events_of("Pool", "web", "ParentNotFound")


# ---- devices no agent drives --------------------------------------------------------------------


async def _no_agent_report(tmp_path: Path, *, change_spec: bool) -> dict[str, Any]:
    """A VIP Active on device ``d`` (generation 1); maybe its spec changes (generation 2, never
    applied: the agent died applying it); then the controller finds ``d`` without an agent."""
    env = Env(tmp_path)
    env.device("d")
    programmed = {"type": "Programmed", "status": "True", "reason": "Programmed",
                  "message": "programmed on device d", "observedGeneration": 1}  # fmt: skip
    active = {"phase": "Active", "observedGeneration": 1, "device": "d", "address": "10.0.0.1",
              "conditions": [programmed]}  # fmt: skip
    env.cluster.create("VIP", "web", tree_spec("VIP"), status=active)
    if change_spec:
        env.cluster.update_spec("VIP", "web", connectionLimit=100)
    ownerless = Ownerless(
        views=env.cluster.views,
        reporter=env.reporter.as_reporter(),
        leases=FakeInformer(LEASES),
        settings=env.settings,
    )
    await ownerless.report("d")
    return env.status("web")


@async_test
async def test_a_device_without_agent_keeps_an_applied_vip_active_but_not_ready(
    tmp_path: Path,
) -> None:
    status = await _no_agent_report(tmp_path, change_spec=False)
    assert (status["phase"], status["observedGeneration"]) == ("Active", 1), status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DeviceNotReady"), ready
    assert status["operatingStatus"] == "OFFLINE"


@async_test
async def test_a_device_without_agent_never_reports_an_unapplied_spec_active(
    tmp_path: Path,
) -> None:
    """Generation 2 never reached the device: Active at generation 2 would be a lie."""
    status = await _no_agent_report(tmp_path, change_spec=True)
    assert status["observedGeneration"] == 2, status
    assert status["phase"] == "Pending" and status["reason"] == "DeviceNotReady", status


@async_test
async def test_a_changed_device_ref_moves_a_bound_vip_or_says_why_it_waits(tmp_path: Path) -> None:
    """Without the move a bound VIP stayed Active on a device its spec no longer named."""
    async with leading(tmp_path) as env:
        env.device("a", addressPool=["10.0.0.0/29"])
        env.device("b", addressPool=["10.0.0.0/28"])
        env.vip("web", deviceRef="a")
        assert await eventually(lambda: env.bound("web")) == ("a", "10.0.0.1")
        env.cluster.update_spec("VIP", "web", deviceRef="b")
        # b's pool holds the address: it is kept (clients keep it too).
        assert await eventually(lambda: env.bound("web") == ("b", "10.0.0.1"))
        (moved,) = env.reporter.events_of("VIP", "web", "Moved")
        assert "moved from device a to b: spec.deviceRef names device b" in moved.message
        scheduled = next(c for c in env.status("web")["conditions"] if c["type"] == "Scheduled")
        assert (scheduled["status"], scheduled["reason"]) == ("True", "Moved")
        # Pinned to a device that does not exist: it stays on b, serving, and says why.
        env.cluster.update_spec("VIP", "web", deviceRef="c")

        def waiting() -> dict[str, Any]:
            conds = env.status("web").get("conditions") or []
            return next((c for c in conds if c["type"] == "Scheduled"), {})

        await eventually(lambda: waiting().get("reason") == "MovePending")
        assert waiting()["status"] == "False" and env.bound("web") == ("b", "10.0.0.1")
        assert "cannot move off device b (spec.deviceRef names device c)" in waiting()["message"]
        assert "pinned by deviceRef but no Device c exists" in waiting()["message"]
        assert len(env.reporter.events_of("VIP", "web", "MovePending")) == 1
        env.device("c", addressPool=["10.0.2.0/29"])  # c appears: the inventory wakes it
        assert await eventually(lambda: env.bound("web") == ("c", "10.0.2.1"))
