"""VIPs waiting for a device wake up when the inventory changes, even in a tight race.

With no debounce, a VIP re-schedules the instant the Device handler triggers it, which is
before the handler's own status patch (phase Ready) reaches the index. The operator must
still wake it again once the Device's new state is indexed, or it would wait forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Api, FakeDevice, OperatorProcess, tree

pytestmark = pytest.mark.cluster


OPERATOR_ENV = {"LBAAS_DEBOUNCE": "0"}


@pytest.mark.parametrize("first_state", ["absent", "NotReady"])
def test_waiting_vips_all_schedule_when_the_device_becomes_usable(
    operator: OperatorProcess, api: Api, namespace: str, tmp_path: Path, first_state: str
) -> None:
    device = FakeDevice(
        api,
        f"{namespace}-late",
        tmp_path,
        allowedNamespaces=[namespace],
        addressPool=["10.212.0.0/24"],
        capacity={"maxVIPs": 100},
    )
    if first_state == "NotReady":
        device.control(notReady=True)
        api.create(device.body)
        api.wait_phase("Device", device.name, None, "NotReady", 10)
    names = [f"w{i}" for i in range(30)]
    for name in names:
        api.create(tree(namespace, name, members=0, monitor=False)[0])
    for name in names:
        api.wait_phase("VIP", name, namespace, "Error", 20, reason="NoEligibleDevice")
    if first_state == "NotReady":
        device.control()  # the next probe reports Ready
    else:
        device.create()
    for name in names:
        body = api.wait_phase("VIP", name, namespace, "Active", 30)
        assert body["status"]["device"] == device.name


def test_bound_vips_follow_their_device_into_error_and_back(
    operator: OperatorProcess, api: Api, namespace: str, tmp_path: Path
) -> None:
    device = FakeDevice(
        api,
        f"{namespace}-flaky",
        tmp_path,
        allowedNamespaces=[namespace],
        addressPool=["10.213.0.0/24"],
    ).create()
    names = [f"b{i}" for i in range(10)]
    for name in names:
        api.create(tree(namespace, name, members=0, monitor=False)[0])
    for name in names:
        api.wait_phase("VIP", name, namespace, "Active", 30)
    good = dict(device.body["spec"]["config"])
    api.patch_spec("Device", device.name, None, {"config": {**good, "stateFile": ""}})
    api.wait_phase("Device", device.name, None, "Error", 15)
    for name in names:
        body = api.wait_phase("VIP", name, namespace, "Error", 15, reason="DeviceError")
        assert "config.stateFile is required" in body["status"]["message"]
    api.patch_spec("Device", device.name, None, {"config": good})
    for name in names:
        api.wait_phase("VIP", name, namespace, "Active", 15)
