"""A child whose parent never comes turns Error ParentNotFound, and still joins later."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Api, FakeDevice, OperatorProcess, tree, wait_for

pytestmark = pytest.mark.cluster


OPERATOR_ENV = {"LBAAS_PARENT_TIMEOUT": "3"}


def test_parent_not_found_then_parent_appears(
    operator: OperatorProcess, api: Api, namespace: str, tmp_path: Path
) -> None:
    FakeDevice(
        api,
        f"{namespace}-pt",
        tmp_path,
        allowedNamespaces=[namespace],
        addressPool=["10.211.0.0/24"],
    ).create()
    api.create(
        {
            "kind": "HealthMonitor",
            "metadata": {"name": "orphan", "namespace": namespace},
            "spec": {"poolRef": "later", "type": "TCP"},
        }
    )
    body = api.wait_phase(
        "HealthMonitor", "orphan", namespace, "Error", 20, reason="ParentNotFound"
    )
    assert "Pool later not found" in body["status"]["message"]
    wait_for(
        lambda: any(e.reason == "ParentNotFound" for e in api.events(namespace, "orphan")),
        10,
        "ParentNotFound event",
    )
    for obj in tree(namespace, "later", members=1, monitor=False):
        api.create(obj)
    api.wait_phase("HealthMonitor", "orphan", namespace, "Active", 20)
