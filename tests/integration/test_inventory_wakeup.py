"""VIPs waiting for a device wake up when the inventory changes, even in a tight race.

With no debounce, a VIP re-schedules the instant the Device handler triggers it, which is
before the handler's own status patch (phase Ready) reaches the index. The operator must
still wake it again once the Device's new state is indexed, or it would wait forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Api, FakeDevice, OperatorProcess, tree

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(log, LBAAS_DEBOUNCE="0").start()
    yield proc
    proc.stop()


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
