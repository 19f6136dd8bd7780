"""Services of type LoadBalancer end to end: the real operator process, the test bed's core
Service and discovery EndpointSlice APIs (the test plays the endpointslice controller), and
a fake device whose state file shows what reached it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from svcsupport import Svc, delete_services

from helpers import Api, FakeDevice, OperatorProcess, stored_members, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator")]

# driverTimeout + leaseRenewPeriod + 1 s must fit in leaseDuration (10 s by default).
OPERATOR_ENV = {"LBAAS_DRIVER_TIMEOUT": "5", "LBAAS_LEASE_DURATION": "8"}
FINALIZER = "lbaas.dev/finalizer"
HTTP = {"name": "http", "port": 80, "targetPort": "web"}
HTTPS = {"name": "https", "port": 443, "targetPort": 8443}


@pytest.fixture(autouse=True)
def cleanup(api: Api, namespace: str, make_device: Callable[..., FakeDevice]) -> Iterator[None]:
    """Services first (their finalizer waits for the trees), then this test's devices.

    Set up after ``make_device``, so torn down before it: the Services must be gone before
    ``make_device`` deletes the namespace's VIPs and waits for none to be left (while a
    Service exists the operator creates its VIPs again, and that wait took its full 30 s).
    """
    yield
    delete_services(api, namespace)
    for item in api.custom.list_cluster_custom_object("lbaas.dev", "v1alpha1", "devices")["items"]:
        if item["metadata"]["name"].startswith(f"{namespace}-"):
            api.delete("Device", item["metadata"]["name"])


def diff(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def on_device(device: FakeDevice, namespace: str) -> dict[str, list[str]]:
    """VIP name → its member names, as the device holds them."""
    return {
        entry["vip"].split("/", 1)[1]: sorted(stored_members(entry))
        for entry in device.listeners().values()
        if entry["vip"].startswith(f"{namespace}/")
    }


def ready_service(api: Api, namespace: str, device: FakeDevice) -> Svc:
    """A one-port Service with three ready endpoints, served."""
    svc = Svc(api, namespace, "web")
    svc.create([{"port": 80, "targetPort": 8080}])
    svc.set_endpoints([(f"10.1.0.{i}", True) for i in (1, 2, 3)], port=8080)
    wait_for(lambda: svc.ingress_ip(), 30, "an ingress IP")
    wait_for(lambda: len(on_device(device, namespace).get("web-80", [])) == 3, 10, "3 members")
    return svc


def test_service_gets_a_tree_per_port_and_an_external_ip(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device(driver="legacy")  # contract 0 through the shim: no UDP
    svc = Svc(api, namespace, "web")
    sctp = {"name": "sig", "port": 9, "protocol": "SCTP"}
    svc.create([HTTP, HTTPS, {"name": "dns", "port": 53, "protocol": "UDP"}, sctp])
    svc.set_endpoints(
        [("10.1.0.1", True), ("10.1.0.2", True), ("10.1.0.3", False)], port=8080, port_name="http"
    )
    svc.set_endpoints(
        [("10.1.0.1", True), ("10.1.0.2", True)], port=8443, port_name="https", slice_name="web-tls"
    )
    wait_for(lambda: svc.ingress_ip(), 30, "an ingress IP")
    service = svc.get()
    assert service is not None
    assert FINALIZER in service["metadata"]["finalizers"]
    assert service["status"]["loadBalancer"] == {
        "ingress": [
            {
                "ip": "10.200.0.1",
                "ports": [
                    {"port": 80, "protocol": "TCP"},
                    {"port": 443, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP", "error": "lbaas.dev/NoEligibleDevice"},
                    {"port": 9, "protocol": "SCTP", "error": "lbaas.dev/ProtocolNotSupported"},
                ],
            }
        ]
    }
    row = svc.kubectl_row()
    assert row[1] == "LoadBalancer" and row[3] == "10.200.0.1", row  # EXTERNAL-IP

    # One tree per port, sharing the address; the named targetPort resolved per slice. The
    # UDP port's VIP was placed first, nowhere (the legacy driver serves no UDP): port 80 was
    # then placed by itself, and the UDP VIP follows it, refused there by name.
    vips = svc.generated("VIP")
    assert sorted(vips) == ["web-443", "web-53-udp", "web-80"]
    assert {v["status"].get("address") for v in vips.values()} >= {"10.200.0.1"}
    udp = vips["web-53-udp"]
    assert udp["spec"]["protocol"] == "UDP" and udp["status"]["reason"] == "NoEligibleDevice"
    assert "lacks feature protocol.udp (UDP listeners and pools)" in udp["status"]["message"]
    assert sorted(svc.generated("Pool")) == sorted(vips)
    assert sorted(svc.generated("HealthMonitor")) == ["web-443", "web-80"]  # none for UDP
    assert svc.member_addresses("web-80") == {("10.1.0.1", 8080), ("10.1.0.2", 8080)}
    assert svc.member_addresses("web-443") == {("10.1.0.1", 8443), ("10.1.0.2", 8443)}
    for objs in svc.everything().values():
        for obj in objs.values():
            (owner,) = obj["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"]) == ("Service", service["metadata"]["uid"])
    on_legacy = {  # the legacy driver's file: {"vip": key, "members": {name: spec}}
        e["vip"].split("/", 1)[1]: sorted(e["members"]) for e in device.listeners().values()
    }
    assert on_legacy == {
        "web-80": ["web-80-10-1-0-1-8080", "web-80-10-1-0-2-8080"],
        "web-443": ["web-443-10-1-0-1-8443", "web-443-10-1-0-2-8443"],
    }
    wait_for(
        lambda: any("protocol.udp" in e.message for e in svc.events("NoEligibleDevice")),
        10,
        "a NoEligibleDevice Event naming protocol.udp",
    )
    wait_for(lambda: svc.events("UnsupportedProtocol"), 10, "UnsupportedProtocol Event (SCTP)")
    # Plain objects of the lbaas category, as a user sees them.
    listed = svc.kubectl("get", "lbaas", "-l", "lbaas.dev/service=web")
    assert "vip.lbaas.dev/web-80" in listed and "member.lbaas.dev/web-443-10-1-0-2-8443" in listed


def test_a_udp_service_without_a_udp_device_is_refused_with_its_reason(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device(driver="legacy")  # contract 0 through the shim: no UDP
    svc = Svc(api, namespace, "dns")
    svc.create([{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}])
    svc.set_endpoints([("10.1.0.1", True)], port=5353, port_name="dns", protocol="UDP")
    wait_for(
        lambda: any("protocol.udp" in e.message for e in svc.events("NoEligibleDevice")),
        30,
        "a NoEligibleDevice Event naming protocol.udp",
    )
    (event,) = svc.events("NoEligibleDevice")
    assert event.message.startswith("VIP dns-53-udp"), event.message
    assert "lacks feature protocol.udp (UDP listeners and pools)" in event.message
    vip = svc.generated("VIP")["dns-53-udp"]
    assert vip["status"]["phase"] == "Error" and vip["spec"]["protocol"] == "UDP"
    assert svc.member_addresses("dns-53-udp") == {("10.1.0.1", 5353)}
    assert not device.listeners()
    wait_for(lambda: (svc.get() or {}).get("status", {}).get("loadBalancer") == {}, 10,
             "no ingress")  # fmt: skip


def writes(operator: OperatorProcess) -> dict[tuple[str, str], float]:
    """The Services controller's writes so far: (kind, apply|delete) -> count."""
    found = {}
    for line in operator.metrics().splitlines():
        match = re.match(
            r'lbaas_service_object_writes_total\{kind="(\w+)",op="(\w+)"\} (\S+)', line
        )
        if match:
            found[(match[1], match[2])] = float(match[3])
    return found


def test_members_follow_the_endpoints_and_only_changes_are_written(
    operator: OperatorProcess, api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    svc = ready_service(api, namespace, device)
    time.sleep(0.5)  # the last statuses of the first apply
    before, generations, sent = svc.versions(), svc.generations(), writes(operator)

    svc.set_endpoints([(f"10.1.0.{i}", True) for i in (1, 2, 3, 4)], port=8080)  # scale up
    wait_for(lambda: len(on_device(device, namespace)["web-80"]) == 4, 5, "4 members on device")
    added = set(svc.versions()) - set(before)
    assert added == {("Member", "web-80-10-1-0-4-8080")}
    # one apply, of the new Member: nothing else was sent, no spec changed
    assert diff(writes(operator), sent) == {("Member", "apply"): 1}
    assert {k: v for k, v in svc.generations().items() if k in generations} == generations

    svc.set_endpoints([("10.1.0.1", True), ("10.1.0.2", False), ("10.1.0.4", True)], port=8080)
    wait_for(
        lambda: (
            on_device(device, namespace)["web-80"]
            == ["web-80-10-1-0-1-8080", "web-80-10-1-0-4-8080"]
        ),
        5,
        "the unready and the removed endpoint off the device",
    )
    assert svc.member_addresses("web-80") == {("10.1.0.1", 8080), ("10.1.0.4", 8080)}

    sent = writes(operator)
    svc.delete_slice()
    wait_for(lambda: on_device(device, namespace)["web-80"] == [], 5, "no members")
    assert diff(writes(operator), sent) == {("Member", "delete"): 2}
    assert svc.generated("Member") == {}
    assert sorted(svc.generated("VIP")) == ["web-80"]  # the VIP stays, with an empty pool


def test_invalid_annotation_warns_and_changes_nothing(
    operator: OperatorProcess, api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    svc = ready_service(api, namespace, device)
    time.sleep(0.5)  # the last statuses of the first apply
    before, sent, applies = svc.generations(), writes(operator), device.state()["applies"]
    svc.patch({"metadata": {"annotations": {"lbaas.dev/lb-method": "fastest"}}})
    event = wait_for(lambda: svc.events("InvalidAnnotation"), 10, "InvalidAnnotation Event")
    assert "lbaas.dev/lb-method: 'fastest' is not one of" in event[0].message
    time.sleep(1.5)  # what a wrong change would have needed, several times over
    assert svc.generations() == before  # no spec changed
    assert diff(writes(operator), sent) == {}  # nothing was even sent
    assert device.state()["applies"] == applies

    svc.patch({"metadata": {"annotations": {"lbaas.dev/lb-method": "least-connections"}}})
    wait_for(
        lambda: svc.generated("Pool")["web-80"]["spec"]["lbMethod"] == "LEAST_CONNECTIONS",
        10,
        "the fixed annotation applied",
    )
    wait_for(
        lambda: (
            [p.method for p in getattr(device.vip(f"{namespace}/web-80"), "pools", ())]
            == ["LEAST_CONNECTIONS"]
        ),
        10,
        "the device has the new method",
    )


def test_driver_error_reaches_the_service(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    device.control(
        fail={"apply": {"message": "no VLAN for 443", "retryable": False, "match": "-443"}}
    )
    svc = Svc(api, namespace, "web")
    svc.create([{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    event = wait_for(lambda: svc.events("DriverError"), 30, "the driver's error as an Event")
    assert "VIP web-443" in event[0].message and "no VLAN for 443" in event[0].message
    wait_for(lambda: svc.ingress_ip(), 30, "an ingress IP")
    ports = svc.get()["status"]["loadBalancer"]["ingress"][0]["ports"]  # type: ignore[index]
    assert ports == [
        {"port": 80, "protocol": "TCP"},
        {"port": 443, "protocol": "TCP", "error": "lbaas.dev/DriverError"},
    ]


def test_deleting_the_service_removes_everything(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    svc = ready_service(api, namespace, device)
    svc.delete()
    wait_for(lambda: svc.get() is None, 30, "the Service gone (finalizer released)")
    assert on_device(device, namespace) == {}
    assert svc.versions() == {}


@pytest.mark.parametrize(
    "changes",
    [
        [{"spec": {"type": "ClusterIP", "loadBalancerClass": None}}],
        # The API keeps the class of a LoadBalancer Service immutable: it changes by leaving
        # the type and coming back with another class (the operator may see either step).
        [
            {"spec": {"type": "NodePort", "loadBalancerClass": None}},
            {"spec": {"type": "LoadBalancer", "loadBalancerClass": "other.example.com/lb"}},
        ],
    ],
    ids=["type", "class"],
)
def test_type_or_class_change_removes_the_tree(
    api: Api,
    namespace: str,
    make_device: Callable[..., FakeDevice],
    changes: list[dict[str, object]],
) -> None:
    device = make_device()
    svc = ready_service(api, namespace, device)
    for change in changes:
        svc.patch(change)
    wait_for(lambda: not svc.versions(), 30, "generated objects gone")
    service = wait_for(
        lambda: (s := svc.get()) and FINALIZER not in (s["metadata"].get("finalizers") or ()) and s,
        10,
        "finalizer released",
    )
    assert (service["status"].get("loadBalancer") or {}).get("ingress") is None
    assert on_device(device, namespace) == {}


def test_services_of_other_classes_are_left_alone(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    make_device()
    other = Svc(api, namespace, "other")
    other.create([{"port": 80}], cls="other.example.com/lb")
    unclassed = Svc(api, namespace, "unclassed")
    unclassed.create([{"port": 80}], cls=None)
    mine = Svc(api, namespace, "mine")
    mine.create([{"port": 80}])
    wait_for(lambda: mine.ingress_ip(), 30, "our Service served")
    for svc in (other, unclassed):
        assert svc.versions() == {}
        service = svc.get()
        assert service is not None and not service["metadata"].get("finalizers")
        assert not service["status"].get("loadBalancer")


def test_a_changed_port_keeps_the_external_ip(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device = make_device()
    svc = ready_service(api, namespace, device)
    address = svc.ingress_ip()
    svc.patch({"spec": {"ports": [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}]}})
    wait_for(lambda: sorted(on_device(device, namespace)) == ["web-8080"], 15, "the new port")
    wait_for(lambda: sorted(svc.generated("VIP")) == ["web-8080"], 10, "the old VIP gone")
    vip = api.wait_phase("VIP", "web-8080", namespace, "Active", 10)
    assert vip["status"]["address"] == address
    wait_for(lambda: svc.ingress_ip() == address, 10, "the same EXTERNAL-IP")
    # The VIP may be Active with the members created so far; the rest follow at once.
    wait_for(lambda: len(on_device(device, namespace).get("web-8080", [])) == 3, 10, "3 members")
