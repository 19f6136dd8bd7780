"""L7 policies through an agent's reconcile (issue 20), without an API server: what the driver
gets, what each object reports, and what a device that lacks a feature does to one policy
(only that one is left out) or to the default forwarded headers (dropped silently).

The device is a contract-1 driver kept in memory (``Memory``, added to the rig's registry with
``DriverRegistry.add``) that declares every feature but those a test takes away.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lbaas.drivers.capabilities import FEATURES, OPERATIONAL
from lbaas.drivers.contract import DeviceHandle, Driver, ProbeResult
from lbaas.drivers.model import LoadBalancer
from lbaas.trees.loop import Mode, Result
from unit.fakes import NS, Rig, async_test, eventually
from unit.test_controller import leading

KEY = (NS, "web")


class Memory(Driver):
    """A device that keeps what it is given, with every tree feature but ``lacks``."""

    def __init__(self, *lacks: str) -> None:
        self.features = frozenset(set(FEATURES) - OPERATIONAL - set(lacks))
        self.held: dict[str, LoadBalancer] = {}

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        self.held[lb.key] = lb

    def delete(self, device: DeviceHandle, key: str) -> None:
        self.held.pop(key, None)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        return ProbeResult(True, "in memory")


async def l7_rig(tmp: Path, driver: Memory, *policies: tuple[str, dict[str, Any]]) -> Rig:
    """VIP ``web`` (HTTP) with pools ``web`` and ``api``, bound to a device of ``driver``."""
    rig = Rig(tmp)
    rig.drivers.add("memory", driver)
    rig.cluster.create("Device", "dev", {"driver": "memory", "addressPool": ["10.0.0.0/29"]})
    await rig.start_worker()
    rig.add_tree(protocol="HTTP", defaultPoolRef="web")
    rig.cluster.create("Pool", "api", {"vipRef": "web", "protocol": "HTTP"})
    rig.cluster.create("Member", "api-1", {"poolRef": "api", "address": "10.1.0.9", "port": 80})
    for name, spec in policies:
        rig.cluster.create("L7Policy", name, {"vipRef": "web", **spec})
    await rig.bind(KEY)
    return rig


def status(rig: Rig, kind: str, name: str) -> dict[str, Any]:
    return dict(rig.cluster.status(kind, name))


def said(rig: Rig, kind: str, name: str) -> tuple[str, str]:
    found = status(rig, kind, name)
    return found.get("phase", ""), found.get("reason", "")


TO_API = {
    "match": {"path": {"value": "/api"}},
    "action": {"type": "Forward", "pools": [{"poolRef": "api"}]},
}
REGEX = {
    "priority": 5,
    "match": {"path": {"type": "RegularExpression", "value": "^/v[0-9]+/.*$"}},
    "action": {"type": "Reject"},
}


def cond(found: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in found.get("conditions") or () if c["type"] == kind), {})


@async_test
async def test_policies_reach_the_driver_and_report_active(tmp_path: Path) -> None:
    driver = Memory()
    async with await l7_rig(tmp_path, driver, ("to-api", TO_API), ("old-v", REGEX)) as rig:
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        lb = driver.held[f"{NS}/web"]
        (listener,) = lb.listeners
        assert [p.name for p in listener.policies] == ["old-v", "to-api"]  # priority 5, 1000
        assert listener.default_pool == "web" and listener.forwarded_headers is True
        assert sorted(p.name for p in lb.pools) == ["api", "web"]
        for kind, name in [
            ("VIP", "web"),
            ("Pool", "api"),
            ("L7Policy", "to-api"),
            ("L7Policy", "old-v"),
        ]:
            assert said(rig, kind, name) == ("Active", "Programmed"), (kind, name)
        default = cond(status(rig, "VIP", "web"), "DefaultPool")
        assert (default["status"], default["reason"]) == ("True", "Resolved")


@async_test
async def test_an_unsupported_policy_fails_alone(tmp_path: Path) -> None:
    driver = Memory("l7.regex")
    async with await l7_rig(tmp_path, driver, ("to-api", TO_API), ("old-v", REGEX)) as rig:
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        lb = driver.held[f"{NS}/web"]
        assert [p.name for p in lb.listeners[0].policies] == ["to-api"]
        assert said(rig, "L7Policy", "old-v") == ("Error", "Unsupported")
        message = status(rig, "L7Policy", "old-v")["message"]
        assert "device dev cannot serve this policy: lacks feature l7.regex" in message
        assert said(rig, "L7Policy", "to-api") == ("Active", "Programmed")
        assert said(rig, "VIP", "web") == ("Active", "Programmed")
        assert [e.reason for e in rig.reporter.events_of("L7Policy", "old-v")] == ["Unsupported"]


@async_test
async def test_a_missing_pool_then_the_pool(tmp_path: Path) -> None:
    later = {"action": {"type": "Forward", "pools": [{"poolRef": "later"}]}, "priority": 1}
    driver = Memory()
    async with await l7_rig(tmp_path, driver, ("to-later", later), ("to-api", TO_API)) as rig:
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        assert said(rig, "L7Policy", "to-later") == ("Error", "PoolNotFound")
        assert [p.name for p in driver.held[f"{NS}/web"].listeners[0].policies] == ["to-api"]
        rig.cluster.create("Pool", "later", {"vipRef": "web", "protocol": "HTTP"})
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        assert said(rig, "L7Policy", "to-later") == ("Active", "Programmed")
        policies = driver.held[f"{NS}/web"].listeners[0].policies
        assert [p.name for p in policies] == ["to-later", "to-api"]


@async_test
async def test_default_forwarded_headers_are_dropped_where_the_device_lacks_them(
    tmp_path: Path,
) -> None:
    driver = Memory("http.forwarded-headers")
    async with await l7_rig(tmp_path, driver) as rig:
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        assert driver.held[f"{NS}/web"].listeners[0].forwarded_headers is False
        assert said(rig, "VIP", "web") == ("Active", "Programmed")
        # asked for explicitly: the device cannot serve the VIP, and says so
        rig.cluster.update_spec("VIP", "web", forwardedHeaders=True)
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.BLOCKED
        assert said(rig, "VIP", "web") == ("Error", "Unsupported")
        assert "http.forwarded-headers" in status(rig, "VIP", "web")["message"]


@async_test
async def test_a_contract_0_driver_serves_an_http_vip_as_before(tmp_path: Path) -> None:
    """A driver of contract 0 (the ``legacy`` test driver behind the shim: no L7, no forwarded
    headers): an HTTP VIP with one pool is served as in 0.1; a policy on it fails alone."""
    async with Rig(tmp_path) as rig:
        rig.add_device(driver="legacy")
        await rig.start_worker()
        rig.add_tree(protocol="HTTP")
        rig.cluster.create("L7Policy", "deny", {"vipRef": "web", "action": {"type": "Reject"}})
        await rig.bind(KEY)
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        assert said(rig, "VIP", "web") == ("Active", "Programmed")
        assert said(rig, "L7Policy", "deny") == ("Error", "Unsupported")
        assert "l7.reject" in status(rig, "L7Policy", "deny")["message"]
        assert list(rig.listeners("dev")) == ["10.0.0.1:80"]


# ---- placement: a policy no device serves does not keep its VIP off every device ---------------


@async_test
async def test_binder_prefers_a_device_that_serves_every_policy(tmp_path: Path) -> None:
    async with leading(tmp_path) as env:
        env.controller.binder.drivers.add("full", Memory())
        env.controller.binder.drivers.add("lean", Memory("l7.regex"))
        for name in ("lean", "full"):
            env.cluster.create(
                "Device", name, {"driver": name, "addressPool": ["10.0.0.0/29"]},
                status={"phase": "Ready"},
            )  # fmt: skip
        env.cluster.create("L7Policy", "rx", {"vipRef": "web", **REGEX})
        env.vip("web", protocol="HTTP")
        assert (await eventually(lambda: env.bound("web")))[0] == "full"


@async_test
async def test_binder_falls_back_to_a_device_that_serves_the_vip_without_them(
    tmp_path: Path,
) -> None:
    async with leading(tmp_path) as env:
        env.controller.binder.drivers.add("lean", Memory("l7.regex", "http.forwarded-headers"))
        env.cluster.create(
            "Device", "lean", {"driver": "lean", "addressPool": ["10.0.0.0/29"]},
            status={"phase": "Ready"},
        )  # fmt: skip
        env.cluster.create("L7Policy", "rx", {"vipRef": "web", **REGEX})
        env.vip("web", protocol="HTTP")
        assert (await eventually(lambda: env.bound("web")))[0] == "lean"
        # asked for explicitly, forwarded headers are a requirement: no device then
        env.vip("strict", protocol="HTTP", port=81, forwardedHeaders=True)
        await eventually(lambda: env.reason("strict") == "NoEligibleDevice")
        assert "http.forwarded-headers" in env.status("strict")["message"]
