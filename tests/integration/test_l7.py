"""L7Policies through the real operator and the test bed, with the fake driver (issue 20):
statuses of policies and pools, a missing pool then the pool, Conflict, a policy on a TCP VIP,
a policy asking for a feature the device's driver lacks (only that policy fails), and a
policy without its VIP (WaitingForParent).

What a policy turns into once valid depends on the device's driver: Active when it declares
the policy's features (the fake driver declares them all, and stores the trees it gets: the
policies are read back from its state file), else Error Unsupported naming the one it lacks (a
device of the ``legacy`` test driver: contract 0 behind the shim, no L7 feature). The
expectation is read from the Device's ``status.features``, what the agent reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers import Api, FakeDevice, tree, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator")]

BY_PATH = {"match": {"path": {"type": "PathPrefix", "value": "/api"}}}
BY_METHOD = {"match": {"method": "DELETE"}, "action": {"type": "Reject"}}


def site(api: Api, namespace: str, name: str = "web", **vip: Any) -> None:
    for obj in tree(namespace, name, members=1, monitor=False, **vip):
        api.create(obj)
    api.wait_phase("VIP", name, namespace, "Active", 30)


def policy(api: Api, namespace: str, name: str, vip: str = "web", **spec: Any) -> None:
    body = {"vipRef": vip, "action": {"type": "Forward", "pools": [{"poolRef": vip}]}, **spec}
    api.create(
        {"kind": "L7Policy", "metadata": {"name": name, "namespace": namespace}, "spec": body}
    )


def features(api: Api, device: FakeDevice) -> set[str]:
    found = wait_for(
        lambda: (api.get("Device", device.name) or {}).get("status", {}).get("features"),
        20,
        "features",
    )
    return set(found)


def expect_served(api: Api, namespace: str, name: str, device: FakeDevice, needs: set[str]) -> None:
    """``name`` ends Active when the device has ``needs``, else Error Unsupported naming one."""
    lacking = sorted(needs - features(api, device))
    if not lacking:
        api.wait_phase("L7Policy", name, namespace, "Active", 20)
        return
    found = api.wait_phase("L7Policy", name, namespace, "Error", 20, reason="Unsupported")
    assert any(f in found["status"]["message"] for f in lacking), found["status"]
    assert "the rest of VIP" in found["status"]["message"]


def test_a_policy_naming_a_missing_pool_then_the_pool(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    site(api, namespace)
    policy(
        api,
        namespace,
        "to-later",
        action={"type": "Forward", "pools": [{"poolRef": "later"}]},
        **BY_PATH,
    )
    found = api.wait_phase("L7Policy", "to-later", namespace, "Error", 20, reason="PoolNotFound")
    assert "action.pools names Pool later, which does not exist" in found["status"]["message"]
    events = api.events(namespace, "to-later")
    assert any(e.reason == "PoolNotFound" for e in events)
    assert api.status("VIP", "web", namespace)["phase"] == "Active"  # the rest serves on
    api.create({"kind": "Pool", "metadata": {"name": "later", "namespace": namespace},
                "spec": {"vipRef": "web", "protocol": "HTTP"}})  # fmt: skip
    api.wait_phase("Pool", "later", namespace, "Active", 20)
    wait_for(
        lambda: api.status("L7Policy", "to-later", namespace).get("reason") != "PoolNotFound",
        20,
        "the policy past PoolNotFound once its pool exists",
    )
    expect_served(api, namespace, "to-later", device, {"l7.path", "l7.multiple-pools"})
    stored = device.vip(f"{namespace}/web")
    assert stored is not None
    (listener,) = stored.listeners
    assert [p.name for p in listener.policies] == ["to-later"]
    assert listener.policies[0].action.pools[0].pool == "later"
    assert {p.name for p in stored.pools} == {"web", "later"}
    assert listener.default_pool is None  # two pools, no defaultPoolRef: no default (503)


def test_another_vips_pool_and_a_tcp_vip_are_refused(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    make_device()
    site(api, namespace)
    site(api, namespace, "tcp", protocol="TCP", port=81)
    policy(api, namespace, "theirs", action={"type": "Forward", "pools": [{"poolRef": "tcp"}]})
    policy(api, namespace, "on-tcp", vip="tcp", **BY_METHOD)
    found = api.wait_phase("L7Policy", "theirs", namespace, "Error", 20, reason="PoolNotInVIP")
    assert "Pool tcp, which belongs to VIP tcp: only pools of VIP web" in found["status"]["message"]
    found = api.wait_phase("L7Policy", "on-tcp", namespace, "Error", 20, reason="ProtocolMismatch")
    assert "VIP tcp has protocol TCP" in found["status"]["message"]
    for vip in ("web", "tcp"):
        assert api.status("VIP", vip, namespace)["phase"] == "Active"


def test_same_priority_and_match_is_a_conflict_the_older_is_used(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    site(api, namespace)
    policy(api, namespace, "first", priority=7, **BY_METHOD)
    wait_for(lambda: api.status("L7Policy", "first", namespace).get("phase"), 20, "first judged")
    policy(api, namespace, "second", priority=7, **BY_METHOD)
    found = api.wait_phase("L7Policy", "second", namespace, "Error", 20, reason="Conflict")
    assert (
        "L7Policy first (older) has the same priority (7) and the same match"
        in (found["status"]["message"])
    )
    expect_served(api, namespace, "first", device, {"l7.method", "l7.reject"})
    api.delete("L7Policy", "first", namespace)
    wait_for(
        lambda: api.status("L7Policy", "second", namespace).get("reason") != "Conflict",
        20,
        "the younger policy takes over once the older is gone",
    )
    expect_served(api, namespace, "second", device, {"l7.method", "l7.reject"})


def test_a_policy_the_device_cannot_serve_fails_alone(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device(driver="legacy")  # contract 0 through the shim: no L7 feature
    site(api, namespace)
    regex = {"match": {"path": {"type": "RegularExpression", "value": "^/v[0-9]+/.*$"}},
             "action": {"type": "Reject"}}  # fmt: skip
    needs = {"l7.path", "l7.regex", "l7.reject"}
    lacking = sorted(needs - features(api, device))
    assert lacking, f"the {device.name} device's driver has every L7 feature"
    policy(api, namespace, "rx", **regex)
    found = api.wait_phase("L7Policy", "rx", namespace, "Error", 20, reason="Unsupported")
    message = found["status"]["message"]
    assert f"device {device.name} cannot serve this policy: lacks feature" in message
    assert any(f"feature {f}" in message for f in lacking) and "the rest of VIP web" in message
    assert api.status("VIP", "web", namespace)["phase"] == "Active"
    for kind, name in (("Pool", "web"), ("Member", "web-m0")):
        assert api.status(kind, name, namespace)["phase"] == "Active"
    events = api.events(namespace, "rx")
    assert any(e.reason == "Unsupported" for e in events)


def test_a_policy_waits_for_its_vip(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    make_device()
    policy(api, namespace, "early", vip="later", **BY_METHOD)
    found = api.wait_phase("L7Policy", "early", namespace, "Pending", 20, reason="WaitingForParent")
    assert "VIP later does not exist" in found["status"]["message"]
    site(api, namespace, "later")
    wait_for(
        lambda: api.status("L7Policy", "early", namespace).get("reason") != "WaitingForParent",
        20,
        "the policy joins its VIP",
    )
