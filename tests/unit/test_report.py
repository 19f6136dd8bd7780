"""What a tree reports when its device cannot tell (issue 11): provisioning (phase) and
operation (operatingStatus) kept apart, UNKNOWN for what the device cannot say, never ONLINE on
a guess."""

from __future__ import annotations

from typing import Any

import pytest

from lbaas.status import member_state
from lbaas.trees import report, translate
from lbaas.trees.tree import Tree, build_tree
from unit.test_tree import member, monitor, pool, snap, vip


def web_tree(*, monitored: bool = True, **member_specs: dict[str, Any]) -> Tree:
    members = [
        snap("Member", name, {"poolRef": "p", "address": "10.1.0.1", "port": 8080, **spec})
        for name, spec in member_specs.items()
    ] or [member("m0", "p"), member("m1", "p")]
    monitors = [monitor("hm", "p")] if monitored else []
    return build_tree(vip(), [pool("p")], {"p": members}, {"p": monitors})


def by_name(pairs: list[tuple[Any, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {obj.name: desired for obj, desired in pairs}


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"observed": "ERROR"}, "ERROR"),
        ({"observed": None}, "ONLINE"),  # monitored and nothing bad observed
        ({"observed": None, "monitored": False}, "NO_MONITOR"),
        ({"observed": None, "weight": 0, "monitored": False}, "DRAINING"),
        ({"observed": "ONLINE", "device_can_tell": False}, "UNKNOWN"),
        ({"observed": None, "device_can_tell": False}, "UNKNOWN"),
        ({"observed": "ONLINE", "admin_up": False}, "OFFLINE"),
        ({"observed": None, "admin_up": False, "device_can_tell": False}, "OFFLINE"),
    ],
)
def test_member_state(kw: dict[str, Any], expected: str) -> None:
    args: dict[str, Any] = {
        "admin_up": True,
        "weight": 1,
        "monitored": True,
        "device_can_tell": True,
        **kw,
    }
    assert member_state(**args) == expected


def test_unreadable_health_makes_monitored_members_unknown() -> None:
    tree = web_tree()
    lb = translate.load_balancer(tree, "192.0.2.1")
    assert report.member_states(lb, None, True) == {"m0": "UNKNOWN", "m1": "UNKNOWN"}
    assert report.member_states(lb, {"m0": "ERROR"}, True) == {"m0": "ERROR", "m1": "ONLINE"}
    unmonitored = translate.load_balancer(web_tree(monitored=False), "192.0.2.1")
    assert report.member_states(unmonitored, None, True) == {
        "m0": "NO_MONITOR",
        "m1": "NO_MONITOR",
    }  # no monitor: nothing to read, the spec says it all


def test_active_tree_with_unreadable_health_is_unknown_but_ready() -> None:
    tree = web_tree()
    out = by_name(report.active(tree, translate.load_balancer(tree, "192.0.2.1"), "d1", health=None,
                                device_ready=True))  # fmt: skip
    assert out["web"]["phase"] == "Active" and out["web"]["operatingStatus"] == "UNKNOWN"
    assert out["p"]["operatingStatus"] == "UNKNOWN"
    assert out["m0"]["operatingStatus"] == out["m1"]["operatingStatus"] == "UNKNOWN"
    assert cond(out["web"], "Ready")["status"] == "True"


def test_device_not_ready_keeps_the_phase_and_says_why() -> None:
    tree = web_tree(m0={}, m1={"adminStateUp": False}, m2={"weight": 0})
    out = by_name(
        report.active(
            tree,
            translate.load_balancer(tree, "192.0.2.1"),
            "d1",
            health={"m0": "ONLINE"},  # stale: the device is not ready, it is not believed
            device_ready=False,
            device_message="HAProxy runs no worker",
        )
    )
    web = out["web"]
    assert web["phase"] == "Active" and web["reason"] == "DeviceNotReady"
    assert "device d1 is not ready: HAProxy runs no worker" in web["message"]
    ready, programmed = cond(web, "Ready"), cond(web, "Programmed")
    assert (ready["status"], ready["reason"]) == ("False", "DeviceNotReady")
    assert programmed["status"] == "True"  # the device still holds the configuration
    assert web["operatingStatus"] == "OFFLINE" and out["p"]["operatingStatus"] == "OFFLINE"
    assert out["m0"]["operatingStatus"] == "UNKNOWN"
    assert out["m1"]["operatingStatus"] == "OFFLINE"  # admin-down whatever the device says
    assert out["m2"]["operatingStatus"] == "UNKNOWN"
    assert out["hm"]["phase"] == "Active" and "operatingStatus" not in out["hm"]


def test_device_back_reports_the_truth_again() -> None:
    tree = web_tree()
    lb = translate.load_balancer(tree, "192.0.2.1")
    down = by_name(report.active(tree, lb, "d1", health=None, device_ready=False))
    for obj in tree.objects:
        obj.snap = {**obj.snap, "status": down[obj.name]}
    up = by_name(report.active(tree, lb, "d1", health={"m1": "ERROR"}, device_ready=True))
    assert up["web"]["reason"] == "Programmed" and up["web"]["operatingStatus"] == "DEGRADED"
    assert cond(up["web"], "Ready")["status"] == "True"
    assert (up["m0"]["operatingStatus"], up["m1"]["operatingStatus"]) == ("ONLINE", "ERROR")
    # Programmed did not change: its transition time is kept; Ready flipped: a new one.
    assert (
        cond(up["web"], "Programmed")["lastTransitionTime"]
        == (cond(down["web"], "Programmed")["lastTransitionTime"])
    )
