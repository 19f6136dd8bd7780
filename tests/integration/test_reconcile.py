"""The reconcile core end to end: real kopf operator process, test bed, fake driver plugin."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from helpers import Api, FakeDevice, OperatorProcess, stored_members, tree, wait_for
from lbaas.drivers.capabilities import summary
from lbaas_fake_driver import FakeDriver

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator")]

KINDS_OF_TREE = ("VIP", "Pool", "Member", "HealthMonitor")

# A refused tree is tried once more at its VIP's resync (spread over the interval by a hash of
# its key): with the default 60 s, a resync could fall inside a test's "nothing retried" window.
OPERATOR_ENV = {"LBAAS_RESYNC_INTERVAL": "3600"}


def create_all(api: Api, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        api.create(obj)


def wait_tree_active(api: Api, objs: list[dict[str, Any]], timeout: float = 30) -> None:
    for obj in objs:
        api.wait_phase(
            obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"], "Active", timeout
        )


def test_full_chain_pending_then_active(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    device.control(delay=1.5)  # a slow device, so Pending is observable before Active
    objs = tree(namespace, "web")
    create_all(api, objs)
    pending = api.wait_phase("VIP", "web", namespace, "Pending", 10)
    assert pending["status"]["reason"] in ("Scheduled", "Applying")
    member = api.wait_phase("Member", "web-m0", namespace, "Pending", 10)
    assert member["status"]["reason"] == "Applying"
    wait_tree_active(api, objs)
    for obj in objs:
        body = api.get(obj["kind"], obj["metadata"]["name"], namespace)
        assert body is not None
        status = body["status"]
        assert status["observedGeneration"] == body["metadata"]["generation"]
        conds = {c["type"]: c["status"] for c in status["conditions"]}
        expected = {"Programmed": "True", "Ready": "True"}
        if obj["kind"] == "VIP":
            expected["Scheduled"] = "True"  # the controller's condition: the binding
            expected["DefaultPool"] = "True"  # where requests no L7Policy takes go (issue 20)
        assert conds == expected, obj
    vip = api.status("VIP", "web", namespace)
    assert vip["device"] == device.name and vip["address"] == "10.200.0.1"
    assert vip["operatingStatus"] == "ONLINE"
    on_device = device.vip(f"{namespace}/web")
    assert on_device is not None and sorted(stored_members(on_device)) == [
        "web-m0",
        "web-m1",
        "web-m2",
    ]
    (pool,) = on_device.pools
    assert pool.monitor is not None and pool.monitor.type == "HTTP"
    # The Device says what its driver supports (kubectl get lbdev: the Features column).
    device_status = api.status("Device", device.name)
    assert set(device_status["features"]) == set(FakeDriver.features)
    assert device_status["featureSummary"] == summary(FakeDriver.features)
    # A spec change bumps the generation; it is Pending, then Active at the new generation.
    api.patch_spec("Member", "web-m1", namespace, {"weight": 7})
    api.wait_phase("Member", "web-m1", namespace, "Pending", 10)
    body = api.wait_phase("Member", "web-m1", namespace, "Active", 15)
    assert body["status"]["observedGeneration"] == 2
    assert stored_members(device.vip(f"{namespace}/web"))["web-m1"].weight == 7


def test_burst_coalesces_into_few_applies(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "burst", members=10)
    create_all(api, objs)
    wait_tree_active(api, objs)
    applies = device.state()["applies"]
    assert applies <= 5, f"{len(objs)} objects caused {applies} applies"


def test_retryable_driver_error_shows_and_recovers(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    device.control(
        fail={"apply": {"message": "VLAN 42 is not trunked to this port", "retryable": True}}
    )
    objs = tree(namespace, "flaky", members=1)
    create_all(api, objs)
    vip = api.wait_phase("VIP", "flaky", namespace, "Error", 15)
    assert (
        vip["status"]["message"] == "VIP 42 is not trunked".replace("VIP", "VLAN") + " to this port"
    )
    assert vip["status"]["reason"] == "DriverError"
    member = api.wait_phase("Member", "flaky-m0", namespace, "Error", 15)
    assert "VLAN 42" in member["status"]["message"]
    wait_for(
        lambda: any("VLAN 42" in (e.message or "") for e in api.events(namespace, "flaky")),
        10,
        "a Warning event on the VIP",
    )
    wait_for(lambda: api.events(namespace, "flaky-m0"), 10, "a Warning event on the member")
    device.control()  # the device heals: no spec change, the retry clears the error
    wait_tree_active(api, objs, timeout=20)


def test_permanent_driver_error_waits_for_spec_change(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    device.control(
        fail={"apply": {"message": "port 80 is reserved on this device", "retryable": False}}
    )
    objs = tree(namespace, "perm", members=1)
    create_all(api, objs)
    api.wait_phase("VIP", "perm", namespace, "Error", 15)
    time.sleep(1)
    applies_before = device.state().get("applies", 0)
    device.control()
    time.sleep(4)  # a retryable error would have been retried (backoff max 2 s) by now
    assert api.status("VIP", "perm", namespace)["phase"] == "Error"
    assert device.state().get("applies", 0) == applies_before
    api.patch_spec("VIP", "perm", namespace, {"port": 8080})
    wait_tree_active(api, objs, timeout=15)


def test_scheduler_spreads_least_loaded(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    devices = [make_device(f"{namespace}-d{i}", addressPool=[f"10.201.{i}.0/24"]) for i in range(3)]
    for i in range(6):
        api.create(tree(namespace, f"s{i}", members=0, monitor=False)[0])
        api.wait_phase("VIP", f"s{i}", namespace, "Active", 20)
    counts = {d.name: len(d.listeners()) for d in devices}
    assert sorted(counts.values()) == [2, 2, 2], counts
    for d in devices:
        wait_for(
            lambda d=d: api.status("Device", d.name).get("vipCount") == 2,
            10,
            f"vipCount of {d.name}",
        )


def test_selector_pin_cordon_and_namespace(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    gold = make_device(f"{namespace}-gold", labels={"tier": "gold"}, addressPool=["10.202.0.0/24"])
    silver = make_device(
        f"{namespace}-silver", labels={"tier": "silver"}, addressPool=["10.202.1.0/24"]
    )
    cordoned = make_device(
        f"{namespace}-cordoned",
        labels={"tier": "gold"},
        schedulable=False,
        addressPool=["10.202.2.0/24"],
    )
    other_ns = make_device(
        f"{namespace}-otherns",
        labels={"tier": "gold"},
        allowedNamespaces=["somebody-else"],
        addressPool=["10.202.3.0/24"],
    )
    sel = tree(
        namespace, "sel", members=0, monitor=False, deviceSelector={"matchLabels": {"tier": "gold"}}
    )[0]
    pin = tree(namespace, "pin", members=0, monitor=False, deviceRef=silver.name)[0]
    api.create(sel)
    api.create(pin)
    assert api.wait_phase("VIP", "sel", namespace, "Active")["status"]["device"] == gold.name
    assert api.wait_phase("VIP", "pin", namespace, "Active")["status"]["device"] == silver.name
    assert not cordoned.listeners() and not other_ns.listeners()
    # Pinned to a cordoned device: refused, with the reason spelled out.
    api.create(tree(namespace, "pin2", members=0, monitor=False, deviceRef=cordoned.name)[0])
    err = api.wait_phase("VIP", "pin2", namespace, "Error", 15, reason="NoEligibleDevice")
    assert "cordoned" in err["status"]["message"]


def test_udp_vip_goes_only_to_a_device_that_declares_udp(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    """The legacy test driver (contract 0, behind the shim) declares no protocol.udp: a UDP
    VIP is placed nowhere, and says which feature is missing; a TCP VIP beside it is served.
    A device of the fake driver (every feature) then takes the UDP VIP by itself."""
    device = make_device(driver="legacy", addressPool=["10.206.0.0/24"])
    udp = tree(namespace, "dns", members=1, monitor=False, protocol="UDP", port=53)
    udp[1]["spec"]["protocol"] = "UDP"
    for obj in udp + tree(namespace, "web", members=1, monitor=False):
        api.create(obj)
    err = api.wait_phase("VIP", "dns", namespace, "Error", 15, reason="NoEligibleDevice")
    message = err["status"]["message"]
    assert "1 lacks feature protocol.udp (UDP listeners and pools)" in message, message
    assert "address" not in err["status"]
    api.wait_phase("VIP", "web", namespace, "Active")
    assert [t["vip"] for t in device.listeners().values()] == [f"{namespace}/web"]
    wait_for(
        lambda: any(
            e.reason == "NoEligibleDevice" and "protocol.udp" in e.message
            for e in api.events(namespace, "dns")
        ),
        10,
        "a NoEligibleDevice Event naming protocol.udp",
    )
    udp_capable = make_device(addressPool=["10.206.1.0/24"])
    bound = api.wait_phase("VIP", "dns", namespace, "Active", 20)
    assert bound["status"]["device"] == udp_capable.name
    stored = udp_capable.vip(f"{namespace}/dns")
    assert stored is not None and stored.listeners[0].protocol == "UDP"


def test_driver_select_device_decides(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    busy = make_device(f"{namespace}-busy", addressPool=["10.205.0.0/24"])
    api.create(tree(namespace, "filler", members=0, monitor=False, deviceRef=busy.name)[0])
    api.wait_phase("VIP", "filler", namespace, "Active")
    picked = make_device(f"{namespace}-picked", create=False, addressPool=["10.205.1.0/24"])
    picked.body["spec"]["config"]["pick"] = True
    picked.create()
    idle = make_device(f"{namespace}-idle", addressPool=["10.205.2.0/24"])
    # Without the driver's choice the least-loaded device would be idle or picked (both 0);
    # load picked up so the scheduler alone would never choose it.
    api.create(tree(namespace, "p0", members=0, monitor=False, deviceRef=picked.name)[0])
    api.wait_phase("VIP", "p0", namespace, "Active")
    api.create(tree(namespace, "chosen", members=0, monitor=False)[0])
    body = api.wait_phase("VIP", "chosen", namespace, "Active")
    assert body["status"]["device"] == picked.name, "select_device must decide"
    assert not idle.listeners()


def test_capacity_exhaustion_then_new_device(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    make_device(f"{namespace}-small", capacity={"maxVIPs": 1})
    api.create(tree(namespace, "first", members=0, monitor=False)[0])
    api.wait_phase("VIP", "first", namespace, "Active")
    api.create(tree(namespace, "second", members=0, monitor=False)[0])
    err = api.wait_phase("VIP", "second", namespace, "Error", 15, reason="NoEligibleDevice")
    assert "at capacity" in err["status"]["message"]
    wait_for(
        lambda: any(e.reason == "NoEligibleDevice" for e in api.events(namespace, "second")),
        10,
        "NoEligibleDevice event",
    )
    added = make_device(f"{namespace}-added", addressPool=["10.203.0.0/24"])
    body = api.wait_phase("VIP", "second", namespace, "Active", 20)
    assert body["status"]["device"] == added.name


def test_raising_capacity_reschedules(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    dev = make_device(f"{namespace}-cap", capacity={"maxVIPs": 0})
    api.create(tree(namespace, "waits", members=0, monitor=False)[0])
    api.wait_phase("VIP", "waits", namespace, "Error", 15, reason="NoEligibleDevice")
    api.patch_spec("Device", dev.name, None, {"capacity": {"maxVIPs": 5}})
    api.wait_phase("VIP", "waits", namespace, "Active", 20)


def test_addresses_unique_and_released(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    make_device(addressPool=["10.204.0.10-10.204.0.11"])
    for name in ("a1", "a2"):
        api.create(tree(namespace, name, members=0, monitor=False)[0])
    a1 = api.wait_phase("VIP", "a1", namespace, "Active")["status"]["address"]
    a2 = api.wait_phase("VIP", "a2", namespace, "Active")["status"]["address"]
    assert {a1, a2} == {"10.204.0.10", "10.204.0.11"}
    api.create(tree(namespace, "a3", members=0, monitor=False)[0])
    err = api.wait_phase("VIP", "a3", namespace, "Error", 15, reason="NoEligibleDevice")
    assert "no free address" in err["status"]["message"]
    api.delete("VIP", "a1", namespace)
    api.wait_gone("VIP", "a1", namespace)
    # a3 is not retried by inventory change here: poke it by a spec change is NOT needed —
    # the release triggers waiting VIPs.
    assert api.wait_phase("VIP", "a3", namespace, "Active", 20)["status"]["address"] == a1


def test_children_before_parents(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "late")
    for obj in reversed(objs[1:]):  # monitor, members, then the pool
        api.create(obj)
    for i in range(3):
        body = api.wait_phase(
            "Member", f"late-m{i}", namespace, "Pending", 10, reason="WaitingForParent"
        )
        assert "late" in body["status"]["message"]
    pool = api.wait_phase("Pool", "late", namespace, "Pending", 10, reason="WaitingForParent")
    assert "VIP late" in pool["status"]["message"]
    api.create(objs[0])  # the VIP, last: everything joins by itself
    wait_tree_active(api, objs)
    assert len(stored_members(device.vip(f"{namespace}/late"))) == 3


def test_parents_deleted_before_children(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "gone")
    create_all(api, objs)
    wait_tree_active(api, objs)
    api.delete("VIP", "gone", namespace)
    api.wait_gone("VIP", "gone", namespace)
    assert device.vip(f"{namespace}/gone") is None, "the driver removed the VIP"
    api.wait_phase("Pool", "gone", namespace, "Pending", 10, reason="WaitingForParent")
    api.wait_phase("Member", "gone-m0", namespace, "Pending", 10, reason="WaitingForParent")
    api.delete("Pool", "gone", namespace)
    api.wait_gone("Pool", "gone", namespace)
    for obj in objs[2:]:
        api.delete(obj["kind"], obj["metadata"]["name"], namespace)
    for obj in objs[2:]:
        api.wait_gone(obj["kind"], obj["metadata"]["name"], namespace, 15)


def test_deleting_a_member_reapplies_without_it(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "shrink")
    create_all(api, objs)
    wait_tree_active(api, objs)
    # Children carry no finalizer: they are gone at once, and their VIP's tree is applied
    # without them (the VIP's own finalizer protects the device's cleanup).
    api.delete("Member", "shrink-m1", namespace)
    api.wait_gone("Member", "shrink-m1", namespace)
    wait_for(
        lambda: (
            sorted(stored_members(device.vip(f"{namespace}/shrink"))) == ["shrink-m0", "shrink-m2"]
        ),
        5,
        "the device drops the member",
    )
    api.delete("HealthMonitor", "shrink", namespace)
    wait_for(
        lambda: (
            [p.monitor for p in device.vip(f"{namespace}/shrink").pools]  # type: ignore[union-attr]
            == [None]
        ),
        5,
        "the device drops the monitor",
    )
    assert api.status("VIP", "shrink", namespace)["phase"] == "Active"


def test_delete_released_when_device_keeps_failing(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "stuck", members=1)
    create_all(api, objs)
    wait_tree_active(api, objs)
    device.control(fail={"delete": {"message": "device unreachable"}})
    api.delete("VIP", "stuck", namespace)
    api.wait_gone("VIP", "stuck", namespace, timeout=60)
    events = api.events(namespace, "stuck")
    assert any(e.reason == "DeleteAbandoned" and "orphan check" in e.message for e in events)


def test_a_second_pool_is_served_and_the_default_pool_is_said(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    """Several pools per VIP (issue 20; before, a second Pool was a Conflict): the second is
    Active too and takes no traffic from the first, the oldest, which stays the default until
    defaultPoolRef names another; one naming no pool leaves the VIP without a default: still
    Active, it says so in its DefaultPool condition and a Warning Event."""
    make_device()
    objs = tree(namespace, "dup", members=1, monitor=False)
    create_all(api, objs)
    wait_tree_active(api, objs)
    api.create(
        {
            "kind": "Pool",
            "metadata": {"name": "dup-2", "namespace": namespace},
            "spec": {"vipRef": "dup"},
        }
    )
    api.wait_phase("Pool", "dup-2", namespace, "Active", 15)

    def default_pool() -> dict[str, Any]:
        status = api.status("VIP", "dup", namespace)
        return next(c for c in status.get("conditions") or () if c["type"] == "DefaultPool")

    wait_for(lambda: "the oldest of its pools" in default_pool()["message"], 15, "the oldest")
    assert default_pool()["reason"] == "Resolved"
    assert default_pool()["message"].startswith("requests no L7Policy takes go to pool dup ")
    api.patch_spec("VIP", "dup", namespace, {"defaultPoolRef": "dup-2"})
    wait_for(lambda: default_pool()["message"].endswith("pool dup-2"), 15, "the named pool")
    api.patch_spec("VIP", "dup", namespace, {"defaultPoolRef": "nowhere"})
    wait_for(lambda: default_pool()["reason"] == "PoolNotFound", 15, "a missing default pool")
    vip = api.status("VIP", "dup", namespace)
    assert vip["phase"] == "Active"
    assert "requests no L7Policy takes are answered 503" in vip["message"]
    # It still serves, so the phase is no alarm: a Warning Event is (once).
    wait_for(
        lambda: [e for e in api.events(namespace, "dup") if e.reason == "PoolNotFound"],
        10,
        "a PoolNotFound Warning Event",
    )


def test_parent_not_found_after_timeout_then_joins(
    api: Api,
    namespace: str,
    make_device: Callable[..., FakeDevice],
    operator: OperatorProcess,
) -> None:
    make_device()
    api.create(
        {
            "kind": "Member",
            "metadata": {"name": "lonely", "namespace": namespace},
            "spec": {"poolRef": "nowhere", "address": "192.0.2.9", "port": 80},
        }
    )
    api.wait_phase("Member", "lonely", namespace, "Pending", 10, reason="WaitingForParent")
    # The operator fixture sets a 60 s parent timeout; the ParentNotFound path is checked in
    # test_parent_timeout.py with a short one. Here: the parent shows up and the child joins.
    create_all(api, tree(namespace, "nowhere", members=0, monitor=False))
    api.wait_phase("Member", "lonely", namespace, "Active", 20)


def test_unknown_driver_and_bad_config(api: Api, namespace: str) -> None:
    api.create(
        {
            "kind": "Device",
            "metadata": {"name": f"{namespace}-nodriver"},
            "spec": {"driver": "nosuchvendor"},
        }
    )
    body = api.wait_phase("Device", f"{namespace}-nodriver", None, "Error", 15)
    assert "no driver named 'nosuchvendor' is installed" in body["status"]["message"]
    assert body["status"]["reason"] == "UnknownDriver"
    api.create(
        {
            "kind": "Device",
            "metadata": {"name": f"{namespace}-badcfg"},
            "spec": {"driver": "fake", "config": {}},
        }
    )
    body = api.wait_phase("Device", f"{namespace}-badcfg", None, "Error", 15)
    assert "config.stateFile is required" in body["status"]["message"]
    for name in ("nodriver", "badcfg"):
        api.delete("Device", f"{namespace}-{name}")


def test_device_in_use_refuses_deletion(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    api.create(tree(namespace, "holder", members=0, monitor=False)[0])
    api.wait_phase("VIP", "holder", namespace, "Active")
    api.delete("Device", device.name)
    body = api.wait_phase("Device", device.name, None, "Error", 15, reason="InUse")
    assert f"{namespace}/holder" in body["status"]["message"]
    api.delete("VIP", "holder", namespace)
    api.wait_gone("VIP", "holder", namespace)
    api.wait_gone("Device", device.name, None, timeout=30)


def test_device_not_ready_then_ready(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    device.control(notReady=True)
    api.wait_phase("Device", device.name, None, "NotReady", 10)
    api.create(tree(namespace, "patient", members=0, monitor=False)[0])
    err = api.wait_phase("VIP", "patient", namespace, "Error", 15, reason="NoEligibleDevice")
    assert "not Ready" in err["status"]["message"]
    device.control()
    api.wait_phase("VIP", "patient", namespace, "Active", 20)


def test_member_operating_status_rollup(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "health", members=2)
    create_all(api, objs)
    wait_tree_active(api, objs)
    device.control(memberStatus={"health-m0": "ERROR"})
    wait_for(
        lambda: api.status("Member", "health-m0", namespace).get("operatingStatus") == "ERROR",
        10,
        "member ERROR",
    )
    wait_for(
        lambda: api.status("VIP", "health", namespace).get("operatingStatus") == "DEGRADED",
        10,
        "VIP DEGRADED",
    )
    device.control()
    wait_for(
        lambda: api.status("VIP", "health", namespace).get("operatingStatus") == "ONLINE",
        10,
        "VIP ONLINE again",
    )


def metric_sum(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_move(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    before = operator.metrics()
    make_device()
    objs = tree(namespace, "metered", members=1)
    create_all(api, objs)
    wait_tree_active(api, objs)
    after = operator.metrics()
    for name, labels in [
        ("lbaas_reconcile_total", {"kind": "VIP", "outcome": "ok"}),
        ("lbaas_driver_calls_total", {"driver": "fake", "op": "apply"}),
        ("lbaas_driver_call_duration_seconds_count", {"driver": "fake", "op": "apply"}),
    ]:
        assert metric_sum(after, name, **labels) > metric_sum(before, name, **labels), name
    wait_for(
        lambda: metric_sum(operator.metrics(), "lbaas_objects", kind="VIP", phase="Active") >= 1,
        10,
        "VIPs by phase gauge",
    )
    wait_for(
        lambda: (
            metric_sum(operator.metrics(), "lbaas_member_operating_status", status="ONLINE") >= 1
        ),
        10,
        "members by operating status gauge",
    )
    assert metric_sum(operator.metrics(), "lbaas_device_capacity") > 0
