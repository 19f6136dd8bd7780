"""The fleet gauges (lbaas.gauges) from caches filled by hand, read back from the registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from lbaas.gauges import FleetGauges, PhaseClock, address_usage, lease_transitions
from lbaas.kube.resources import LEASES
from unit.fakes import NS, Cluster, FakeInformer


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def ready(status: str, since: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "lastTransitionTime": since, "reason": "X"}


def test_address_usage_counts_only_addresses_inside_the_pool() -> None:
    pool = ["10.0.0.0/30", "10.1.0.5-10.1.0.9"]  # 2 hosts + 5
    used = ["10.0.0.1", "10.1.0.9", "192.0.2.1", "not-an-ip", "10.1.0.10"]
    assert address_usage(pool, used) == (7, 2)
    assert address_usage([], ["10.0.0.1"]) == (0, 0)
    assert address_usage(["2001:db8::/126"], ["2001:db8::1", "10.0.0.1"]) == (3, 1)


def test_phase_clock_dates_first_sight_by_ready_and_changes_by_now() -> None:
    now = [2_000_000_000.0]
    clock = PhaseClock(lambda: now[0])
    key = ("VIP", NS, "web")
    error = {"phase": "Error", "conditions": [ready("False", "2033-05-18T03:00:00Z")]}
    clock.observe([(key, error)])
    since = clock.oldest()[("VIP", "Error")]
    assert since == 1_999_998_000.0  # 03:00:00Z is 2000 s before 03:33:20Z
    now[0] += 60
    clock.observe([(key, error)])
    assert clock.oldest()[("VIP", "Error")] == since, "unchanged phase keeps its start"
    clock.observe([(key, {**error, "phase": "Pending"})])
    assert clock.oldest() == {("VIP", "Pending"): now[0]}, "a change seen starts the clock now"
    clock.observe([(key, {"phase": "Active"})])
    assert clock.oldest() == {}
    # Ready True (or absent) says nothing about when the object left it: now, not earlier.
    clock.observe([(("Member", NS, "m"), {"phase": "Error"})])
    assert clock.oldest() == {("Member", "Error"): now[0]}
    future = {"phase": "Error", "conditions": [ready("False", "2040-01-01T00:00:00Z")]}
    clock.observe([(("Pool", NS, "p"), future)])
    assert clock.oldest() == {("Pool", "Error"): now[0]}, "never later than now"


def test_lease_transitions_by_device_annotation() -> None:
    leases = [
        {
            "metadata": {"name": "lbaas-device-x", "annotations": {"lbaas.dev/device": "x"}},
            "spec": {"leaseTransitions": 7},
        },
        {"metadata": {"name": "lbaas-controller"}, "spec": {"leaseTransitions": 3}},
    ]
    assert lease_transitions(leases) == {"x": 7}


def test_fleet_gauges_from_the_caches() -> None:
    cluster = Cluster()
    cluster.create(
        "Device",
        "gauge-d1",
        {"driver": "fake", "addressPool": ["10.9.0.0/29"]},  # 6 hosts
        status={"phase": "NotReady", "reason": "NoAgent"},
    )
    for i in range(2):
        cluster.create(
            "VIP",
            f"gv{i}",
            {"port": 80},
            status={"phase": "Error", "device": "gauge-d1", "address": f"10.9.0.{i + 1}"},
        )
    outside = {"phase": "Active", "device": "gauge-d1", "address": "192.0.2.7"}
    cluster.create("VIP", "gv-out", {"port": 80, "address": "192.0.2.7"}, status=outside)
    leases = FakeInformer(LEASES)
    lease = {
        "metadata": {
            "name": "lbaas-device-gauge-d1",
            "namespace": "lbaas-system",
            "annotations": {"lbaas.dev/device": "gauge-d1"},
        },
        "spec": {"leaseTransitions": 4},
    }
    leases._apply("MODIFIED", lease)
    gauges = FleetGauges(cluster.views, leases, clock=lambda: 1234.0)
    gauges.update()
    assert sample("lbaas_objects", kind="VIP", phase="Error") == 2
    assert sample("lbaas_objects", kind="VIP", phase="Active") == 1
    assert (
        sample("lbaas_objects_oldest_in_phase_timestamp_seconds", kind="VIP", phase="Error")
        == 1234.0
    )
    labels = {"device": "gauge-d1", "phase": "NotReady", "reason": "NoAgent"}
    assert sample("lbaas_device_status_phase", **labels) == 1
    assert sample("lbaas_device_addresses", device="gauge-d1") == 6
    assert sample("lbaas_device_addresses_used", device="gauge-d1") == 2
    assert sample("lbaas_device_lease_transitions", device="gauge-d1") == 4
    # The device turns Ready: its old series goes, the new one comes; the Error VIPs too.
    cluster.create("Device", "gauge-d1", {"driver": "fake", "addressPool": ["10.9.0.0/29"]},
                   status={"phase": "Ready", "reason": "Probed"})  # fmt: skip
    for i in range(2):
        cluster.delete("VIP", f"gv{i}")
    gauges.update()
    assert sample("lbaas_device_status_phase", **labels) is None
    assert sample("lbaas_device_status_phase", device="gauge-d1", phase="Ready",
                  reason="Probed") == 1  # fmt: skip
    assert sample("lbaas_objects", kind="VIP", phase="Error") is None
    assert sample("lbaas_device_addresses_used", device="gauge-d1") == 0
    assert (
        sample("lbaas_objects_oldest_in_phase_timestamp_seconds", kind="VIP", phase="Error") is None
    )
