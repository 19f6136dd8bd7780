"""Property: whatever the order of creates and deletes, the tree ends consistent.

Hypothesis draws sequences of creates/deletes over one tree (VIP, Pool, 3 Members, a
HealthMonitor), fired without waiting; then the device must hold exactly what the surviving
objects describe, complete chains must be Active, and children without a parent must wait.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import Api, FakeDevice, OperatorProcess, kubectl, stored_members, tree, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator")]

NAMES = ["VIP", "Pool", "m0", "m1", "m2", "HM"]
ops = st.lists(
    st.tuples(st.sampled_from(["create", "delete"]), st.sampled_from(NAMES)),
    min_size=3,
    max_size=14,
)


def _objects(ns: str) -> dict[str, dict[str, Any]]:
    objs = tree(ns, "r", members=3, deviceSelector={"matchLabels": {"prop": ns}})
    return {
        "VIP": objs[0],
        "Pool": objs[1],
        "m0": objs[2],
        "m1": objs[3],
        "m2": objs[4],
        "HM": objs[5],
    }


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=ops)
def test_any_order_converges(
    operator: OperatorProcess, api: Api, tmp_path: Path, sequence: list[tuple[str, str]]
) -> None:
    ns = f"p-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns)
    device = FakeDevice(
        api,
        ns,
        tmp_path,
        labels={"prop": ns},
        allowedNamespaces=[ns],  # cluster-scoped: never offer it to other tests' VIPs
        addressPool=["10.220.0.0/24"],
    ).create()
    objs = _objects(ns)
    alive: set[str] = set()
    for op, name in sequence:
        obj = objs[name]
        if op == "create" and name not in alive:
            # A name being deleted can't be created again (409) until its finalizer is done.
            api.wait_gone(obj["kind"], obj["metadata"]["name"], ns, 30)
            api.create(obj)
            alive.add(name)
        elif op == "delete" and name in alive:
            api.delete(obj["kind"], obj["metadata"]["name"], ns)
            alive.discard(name)

    def gone_all() -> bool:
        return all(
            api.get(objs[n]["kind"], objs[n]["metadata"]["name"], ns) is None
            for n in NAMES
            if n not in alive
        )

    wait_for(gone_all, 30, "deleted objects to go")
    members = sorted(f"r-m{n[1]}" for n in alive if n.startswith("m"))
    chain = {"VIP", "Pool"} <= alive
    if "VIP" in alive:
        api.wait_phase("VIP", "r", ns, "Active", 30)

        def device_matches() -> bool:
            on = device.vip(f"{ns}/r")
            if on is None:
                return False
            want_members = members if chain else []
            want_monitor = chain and "HM" in alive
            monitors = [p.monitor for p in on.pools if p.monitor is not None]
            return sorted(stored_members(on)) == want_members and bool(monitors) == want_monitor

        wait_for(device_matches, 30, "device to hold exactly the surviving tree")
    else:
        wait_for(lambda: device.vip(f"{ns}/r") is None, 30, "VIP removed from the device")
    for name in alive - {"VIP"}:
        obj = objs[name]
        phase = "Active" if chain else "Pending"
        api.wait_phase(obj["kind"], obj["metadata"]["name"], ns, phase, 30)
    assert not device.state().get("duplicates")
