"""Every wait ends, and no status guesses (issue 11), with the real operator and the fake driver.

- A VIP refused with ``AddressInUse`` names the VIP holding the address (not itself) and is
  bound by itself once that VIP goes away.
- Children orphaned by a deleted VIP or Pool turn ``ParentNotFound`` after ``parentTimeout``,
  without a restart.
- A child deleted while its tree cannot be applied (the device fails, or is in Error) leaves
  the device once it can: the tree is retried, never dropped as if done.
- Member health that cannot be read makes monitored members UNKNOWN, never ONLINE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers import Api, FakeDevice, stored_members, tree, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator")]

PARENT_TIMEOUT = 3
OPERATOR_ENV = {"LBAAS_PARENT_TIMEOUT": str(PARENT_TIMEOUT), "LBAAS_RETRY_BACKOFF_MAX": "1"}


def create_all(api: Api, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        api.create(obj)


def all_active(api: Api, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        meta = obj["metadata"]
        api.wait_phase(obj["kind"], meta["name"], meta["namespace"], "Active", 20)


def test_address_in_use_names_the_holder_and_retries_when_it_goes(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device(addressPool=["10.212.0.0/24"])
    listener = {"address": "10.212.0.5", "port": 80, "deviceRef": device.name}
    # "alpha" sorts before the holder "zeta": its message once named itself.
    zeta = tree(namespace, "zeta", members=1, monitor=False, **listener)
    create_all(api, zeta)
    all_active(api, zeta)
    create_all(api, tree(namespace, "alpha", members=1, monitor=False, **listener))
    body = api.wait_phase("VIP", "alpha", namespace, "Error", 15, reason="AddressInUse")
    message = body["status"]["message"]
    assert f"VIP {namespace}/zeta" in message and f"{namespace}/alpha" not in message, message
    api.wait_phase("Pool", "alpha", namespace, "Pending", 10, reason="VIPNotScheduled")

    api.delete("VIP", "zeta", namespace)
    api.wait_gone("VIP", "zeta", namespace)
    api.wait_phase("VIP", "alpha", namespace, "Active", 15)
    api.wait_phase("Member", "alpha-m0", namespace, "Active", 15)
    assert device.vip(f"{namespace}/alpha") is not None
    assert device.vip(f"{namespace}/zeta") is None


def test_children_of_a_deleted_vip_or_pool_give_up_waiting(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    make_device()
    objs = tree(namespace, "gone", members=1) + tree(namespace, "kept", members=1)
    create_all(api, objs)
    all_active(api, objs)
    api.delete("VIP", "gone", namespace)
    api.delete("Pool", "kept", namespace)
    waiting = [("Pool", "gone"), ("Member", "gone-m0"), ("HealthMonitor", "gone")]
    waiting += [("Member", "kept-m0"), ("HealthMonitor", "kept")]
    for kind, name in waiting:
        api.wait_phase(kind, name, namespace, "Pending", 10, reason="WaitingForParent")
    for kind, name in waiting:
        body = api.wait_phase(
            kind, name, namespace, "Error", PARENT_TIMEOUT + 10, reason="ParentNotFound"
        )
        assert f"not found after {PARENT_TIMEOUT}s" in body["status"]["message"], body
    wait_for(
        lambda: any(e.reason == "ParentNotFound" for e in api.events(namespace, "kept-m0")),
        10,
        "ParentNotFound Event",
    )
    assert api.status("VIP", "kept", namespace)["phase"] == "Active"


def test_a_child_deleted_while_its_tree_cannot_be_applied_leaves_the_device_later(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "web", members=3, monitor=False)
    create_all(api, objs)
    all_active(api, objs)

    def members_on_device() -> list[str]:
        return sorted(stored_members(device.vip(f"{namespace}/web")))

    # The device fails every apply: the deletion is retried until it goes through.
    device.control(fail={"apply": {"message": "device busy", "retryable": True}})
    api.delete("Member", "web-m0", namespace)
    api.wait_gone("Member", "web-m0", namespace)
    api.wait_phase("VIP", "web", namespace, "Error", 10)
    assert members_on_device() == ["web-m0", "web-m1", "web-m2"]
    device.control()
    wait_for(lambda: members_on_device() == ["web-m1", "web-m2"], 10, "m0 off the device")
    api.wait_phase("VIP", "web", namespace, "Active", 10)

    # The Device is in Error (its config broken): the deletion waits for it to be fixed.
    config = dict(device.body["spec"]["config"])
    api.patch_spec("Device", device.name, None, {"config": {"stateFile": ""}})
    api.wait_phase("Device", device.name, None, "Error", 10)
    api.delete("Member", "web-m1", namespace)
    api.wait_gone("Member", "web-m1", namespace)
    api.wait_phase("VIP", "web", namespace, "Error", 10, reason="DeviceError")
    assert members_on_device() == ["web-m1", "web-m2"]
    api.patch_spec("Device", device.name, None, {"config": config})
    wait_for(lambda: members_on_device() == ["web-m2"], 15, "m1 off the device")
    api.wait_phase("VIP", "web", namespace, "Active", 10)


def test_unreadable_member_health_is_unknown_never_online(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    objs = tree(namespace, "hm", members=2) + tree(namespace, "plain", members=1, monitor=False)
    create_all(api, objs)
    all_active(api, objs)

    def operating(kind: str, name: str) -> str | None:
        return api.status(kind, name, namespace).get("operatingStatus")

    wait_for(lambda: operating("VIP", "hm") == "ONLINE", 10, "ONLINE")
    device.control(fail={"memberStatus": True})
    for member in ("hm-m0", "hm-m1"):
        wait_for(lambda m=member: operating("Member", m) == "UNKNOWN", 10, f"{member} UNKNOWN")
    assert operating("VIP", "hm") == "UNKNOWN" and operating("Pool", "hm") == "UNKNOWN"
    assert api.status("VIP", "hm", namespace)["phase"] == "Active"
    # Without a monitor there is no health to read: still NO_MONITOR, the VIP ONLINE.
    assert operating("Member", "plain-m0") == "NO_MONITOR"
    assert operating("VIP", "plain") == "ONLINE"
    device.control()
    wait_for(lambda: operating("VIP", "hm") == "ONLINE", 10, "ONLINE again")
    assert operating("Member", "hm-m0") == "ONLINE"


def test_a_failover_with_nowhere_to_go_keeps_the_vip_where_it_is(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    """Reschedule, but no other device may take the VIPs (one is pinned, the other finds no
    eligible device): they stay bound to their device, waiting, instead of losing their
    binding (and the device its configuration) while it is down."""
    device = make_device(failover={"policy": "Reschedule", "afterSeconds": 1})
    pinned = tree(namespace, "pinned", members=1, monitor=False, deviceRef=device.name)
    free = tree(namespace, "free", members=1, monitor=False)
    create_all(api, pinned + free)
    all_active(api, pinned + free)
    before = {name: api.status("VIP", name, namespace)["address"] for name in ("pinned", "free")}
    device.control(notReady=True)
    api.wait_phase("Device", device.name, None, "NotReady", 10)
    wait_for(
        lambda: all(
            any(e.reason == "FailoverPending" for e in api.events(namespace, name))
            for name in ("pinned", "free")
        ),
        10,
        "FailoverPending Events",
    )
    (pinned_why,) = [
        e.message for e in api.events(namespace, "pinned") if e.reason == "FailoverPending"
    ]
    assert "pinned to that device by spec.deviceRef" in pinned_why, pinned_why
    for name in ("pinned", "free"):
        status = api.status("VIP", name, namespace)
        assert status["device"] == device.name and status["address"] == before[name], status
        assert status["phase"] == "Active" and status["reason"] == "DeviceNotReady", status
    device.control()
    for name in ("pinned", "free"):
        wait_for(
            lambda n=name: api.status("VIP", n, namespace).get("operatingStatus") == "ONLINE",
            10,
            f"{name} ONLINE",
        )
        assert device.vip(f"{namespace}/{name}") is not None
    assert device.state().get("deletes", 0) == 0
