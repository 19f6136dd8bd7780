"""Restart safety: kill -9 in the middle of applies; the restarted operator converges."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Api, FakeDevice, OperatorProcess, stored, stored_members, tree, wait_for

pytestmark = pytest.mark.cluster

TREES = 20


def test_kill9_mid_apply_then_restart_converges(
    kubeconfig: str, api: Api, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    first = OperatorProcess(log).start()
    try:
        devices = [
            FakeDevice(
                api,
                f"{namespace}-r{i}",
                tmp_path,
                allowedNamespaces=[namespace],
                addressPool=[f"10.210.{i}.0/24"],
            ).create()
            for i in range(2)
        ]
        for d in devices:
            d.control(delay=0.2)  # slow applies: the kill lands in the middle of the work
        objs = [o for i in range(TREES) for o in tree(namespace, f"v{i}", members=3)]
        for obj in objs:
            api.create(obj)
        wait_for(
            lambda: sum(d.state().get("applies", 0) for d in devices) >= 5, 30, "some applies done"
        )
        first.kill9()
    finally:
        first.stop()
    applied_before = sum(d.state().get("applies", 0) for d in devices)
    for d in devices:
        d.control()
    second = OperatorProcess(log).start()
    try:
        for obj in objs:
            api.wait_phase(obj["kind"], obj["metadata"]["name"], namespace, "Active", 60)
    finally:
        second.stop()
    assert applied_before < TREES * 2, "the kill came too late to interrupt anything"
    listeners = {k: v for d in devices for k, v in d.listeners().items()}
    assert len(listeners) == TREES, sorted(listeners)
    assert all(not d.state().get("duplicates") for d in devices), [
        d.state().get("duplicates") for d in devices
    ]
    for i in range(TREES):
        status = api.status("VIP", f"v{i}", namespace)
        entry = next(t for t in listeners.values() if t["vip"] == f"{namespace}/v{i}")
        assert stored(entry).address == status["address"]
        assert sorted(stored_members(entry)) == [f"v{i}-m{j}" for j in range(3)]
