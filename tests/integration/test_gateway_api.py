"""The Gateway API end to end: the upstream CRDs in the test bed, the real operator process
(``LBAAS_GATEWAY_API=true``), Services and EndpointSlices written by the test (the test bed
runs no controllers) and fake devices whose state files show what reached them."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gwkit import backend, gateway, gateway_class, grant, listener, parent, passthrough, route
from gwsupport import Gw, all_conditions, install_crds

from helpers import (
    LEASE_NAMESPACE,
    Api,
    FakeDevice,
    OperatorProcess,
    kubectl,
    stored_members,
    wait_for,
)
from lbaas.kube.resources import ROUTES

pytestmark = [pytest.mark.cluster]

FINALIZER = "lbaas.dev/finalizer"
TCP = {"name": "tcp", "port": 80, "targetPort": 8080, "protocol": "TCP"}


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The CRDs first: the operator decides at start whether the Gateway API is on."""
    install_crds()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(log, LBAAS_GATEWAY_API="true", LBAAS_DRIVER_TIMEOUT="3").start()
    yield proc
    proc.stop()
    print(f"operator log: {log}")


@pytest.fixture
def gw(api: Api) -> Gw:
    return Gw(api)


@pytest.fixture
def cls(gw: Gw, namespace: str, make_device: Callable[..., FakeDevice]) -> Iterator[str]:
    """A GatewayClass of this test whose parameters select this test's devices only (made
    with ``device()``); at teardown the Gateways go first (their finalizer waits for the
    trees), then the class and its ConfigMap, before ``make_device`` removes the devices."""
    name = f"lbaas-{namespace}"
    config_map(name, deviceSelector=f"matchLabels: {{gw-test: {namespace}}}")
    gw.create(gateway_class(name, params=params_ref(name)))
    yield name
    for item in gw.items("Gateway", namespace):
        gw.delete("Gateway", namespace, item["metadata"]["name"])
    wait_for(lambda: not gw.items("Gateway", namespace), 30, "the Gateways gone")
    gw.delete("GatewayClass", None, name)
    kubectl("delete", "configmap", name, "-n", LEASE_NAMESPACE, "--ignore-not-found")


def params_ref(name: str) -> dict[str, str]:
    return {"group": "", "kind": "ConfigMap", "name": name, "namespace": LEASE_NAMESPACE}


def config_map(name: str, **data: str) -> None:
    args = [f"--from-literal={k}={v}" for k, v in data.items()]
    manifest = kubectl(
        "create", "configmap", name, "-n", LEASE_NAMESPACE, *args, "--dry-run=client", "-o", "yaml"
    ).stdout
    kubectl("apply", "-f", "-", stdin=manifest)


def device(make_device: Callable[..., FakeDevice], namespace: str, **spec: Any) -> FakeDevice:
    return make_device(labels={"gw-test": namespace}, **spec)


def on_device(device: FakeDevice, namespace: str) -> dict[str, list[str]]:
    """VIP name → its member names, as the device holds them."""
    return {
        entry["vip"].split("/", 1)[1]: sorted(stored_members(entry))
        for entry in device.listeners().values()
        if entry["vip"].startswith(f"{namespace}/")
    }


def writes(operator: OperatorProcess) -> dict[tuple[str, str], float]:
    found = {}
    for line in operator.metrics().splitlines():
        match = re.match(
            r'lbaas_gateway_object_writes_total\{kind="(\w+)",op="(\w+)"\} (\S+)', line
        )
        if match:
            found[(match[1], match[2])] = float(match[3])
    return found


def diff(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def programmed(gw: Gw, namespace: str, name: str = "gw") -> None:
    gw.wait_condition("Gateway", namespace, name, "Programmed", "True", "Programmed")


def test_class_accepted_with_the_features_of_its_devices(
    gw: Gw, cls: str, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device(make_device, namespace)
    gw.wait_condition("GatewayClass", None, cls, "Accepted", "True", "Accepted")
    must = {
        "Gateway",
        "GatewayAddressEmpty",
        "GatewayStaticAddresses",
        "ReferenceGrant",
        "TCPRoute",
        "TLSRoute",
    }
    # The fake driver declares every feature a tree may ask for: HTTPRoute too, where this
    # operator translates it, and UDPRoute (its protocol.udp: VIPs of protocol UDP).
    http = any(r.kind == "HTTPRoute" for r in ROUTES)

    def names() -> list[str]:
        status = (gw.get("GatewayClass", None, cls) or {}).get("status") or {}
        return [f["name"] for f in status.get("supportedFeatures") or ()]

    wait_for(lambda: must <= set(names()), 10, "supportedFeatures from the fake driver's")
    assert names() == sorted(names()) and "UDPRoute" in names()
    assert ("HTTPRoute" in names()) is http and ("HTTPRouteQueryParamMatching" in names()) is http
    config_map(cls, deviceSelector="matchLabels: [", staticAddresses="Denied")
    cond = gw.wait_condition("GatewayClass", None, cls, "Accepted", "False", "InvalidParameters")
    assert "not YAML" in cond["message"]
    assert cond["observedGeneration"] == 1
    config_map(
        cls, deviceSelector=f"matchLabels: {{gw-test: {namespace}}}", staticAddresses="Denied"
    )
    gw.wait_condition("GatewayClass", None, cls, "Accepted", "True", "Accepted")
    wait_for(
        lambda: (
            "GatewayStaticAddresses"
            not in [
                f["name"] for f in gw.get("GatewayClass", None, cls)["status"]["supportedFeatures"]
            ]
        ),
        10,
        "static addresses no longer announced",
    )
    other = f"other-{uuid.uuid4().hex[:6]}"
    gw.create(gateway_class(other, controller="example.com/not-us"))
    try:
        time.sleep(1)
        assert gw.condition("GatewayClass", None, other, "Accepted")["reason"] == "Pending"
    finally:
        gw.delete("GatewayClass", None, other)


def test_tcp_and_tls_routes_become_trees_on_one_address_and_leave_with_the_gateway(
    operator: OperatorProcess,
    gw: Gw,
    cls: str,
    namespace: str,
    make_device: Callable[..., FakeDevice],
) -> None:
    dev = device(make_device, namespace)
    gw.service(namespace, "db", TCP)
    gw.endpoints(namespace, "db", ["10.1.0.1", "10.1.0.2"], 8080)
    gw.service(namespace, "db2", TCP)
    gw.endpoints(namespace, "db2", ["10.1.0.9"], 8080)
    gw.service(namespace, "tls", {"name": "tls", "port": 443, "targetPort": 8443})
    gw.endpoints(namespace, "tls", ["10.1.0.3"], 8443)
    gw.create(
        gateway("gw", namespace, listener("db", 5432, "TCP"), passthrough("tls", 443), cls=cls)
    )
    gw.create(
        route(
            "TCPRoute",
            "db",
            namespace,
            [parent("gw", sectionName="db")],
            [backend("db", 80, weight=3), backend("db2", 80, weight=1)],
        )
    )
    gw.create(
        route(
            "TLSRoute",
            "tls",
            namespace,
            [parent("gw")],
            [backend("tls", 443)],
            hostnames=["db.example.com"],
        )
    )
    programmed(gw, namespace)
    gateway_obj = gw.get("Gateway", namespace, "gw")
    assert gateway_obj is not None
    assert FINALIZER in gateway_obj["metadata"]["finalizers"]
    assert gateway_obj["status"]["addresses"] == [{"type": "IPAddress", "value": "10.200.0.1"}]
    assert {c.get("observedGeneration") for c in all_conditions(gateway_obj)} == {1}
    for name, kind in (("db", "TCPRoute"), ("tls", "TLSRoute")):
        assert gw.listener(namespace, "gw", name)["attachedRoutes"] == 1
        assert gw.listener(namespace, "gw", name)["supportedKinds"] == [
            {"group": "gateway.networking.k8s.io", "kind": kind}
        ]
        r = gw.wait_condition(kind, namespace, name, "ResolvedRefs", "True", parent="gw")
        assert r["observedGeneration"] == 1
        assert gw.condition(kind, namespace, name, "Accepted", parent="gw")["status"] == "True"

    made = gw.everything(namespace, "gw")
    assert sorted(made["VIP"]) == ["gw-443", "gw-5432"]
    assert {v["status"]["address"] for v in made["VIP"].values()} == {"10.200.0.1"}
    assert {v["spec"]["protocol"] for v in made["VIP"].values()} == {"TCP", "HTTPS"}
    assert sorted(made["Pool"]) == sorted(made["HealthMonitor"]) == ["gw-443-tls", "gw-5432-db"]
    # db gets 3/4 of the connections over 2 endpoints, db2 1/4 over 1: shares 3/8, 3/8, 2/8.
    assert gw.members(namespace, "gw") == {
        "gw-5432-db-10-1-0-1-8080": ("10.1.0.1", 8080, 256),
        "gw-5432-db-10-1-0-2-8080": ("10.1.0.2", 8080, 256),
        "gw-5432-db-10-1-0-9-8080": ("10.1.0.9", 8080, 171),
        "gw-443-tls-10-1-0-3-8443": ("10.1.0.3", 8443, 1),
    }
    for objs in made.values():
        for obj in objs.values():
            (owner,) = obj["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"]) == ("Gateway", gateway_obj["metadata"]["uid"])
    wait_for(
        lambda: (
            on_device(dev, namespace)
            == {
                "gw-443": ["gw-443-tls-10-1-0-3-8443"],
                "gw-5432": [
                    "gw-5432-db-10-1-0-1-8080",
                    "gw-5432-db-10-1-0-2-8080",
                    "gw-5432-db-10-1-0-9-8080",
                ],
            }
        ),
        10,
        "both trees on the device",
    )

    # A change of the route changes only what differs: the Members' weights.
    time.sleep(0.5)
    sent = writes(operator)
    gw.patch(
        "TCPRoute",
        namespace,
        "db",
        {
            "spec": {
                "rules": [
                    {"backendRefs": [backend("db", 80, weight=1), backend("db2", 80, weight=1)]}
                ]
            }
        },
    )
    wait_for(
        lambda: gw.members(namespace, "gw")["gw-5432-db-10-1-0-1-8080"][2] == 128,
        10,
        "the new weights",
    )
    time.sleep(0.5)
    assert diff(writes(operator), sent) == {("Member", "apply"): 3}, "3 weights, nothing else"

    # The route goes: its pool and members go; the VIP stays. The Gateway goes: all of it.
    gw.delete("TCPRoute", namespace, "db")
    wait_for(lambda: "gw-5432-db" not in gw.generated(namespace, "gw", "Pool"), 10, "pool gone")
    assert gw.listener(namespace, "gw", "db")["attachedRoutes"] == 0
    gw.delete("Gateway", namespace, "gw")
    wait_for(lambda: gw.get("Gateway", namespace, "gw") is None, 30, "finalizer released")
    assert on_device(dev, namespace) == {}
    assert gw.versions(namespace, "gw") == {}
    wait_for(
        lambda: gw.get("TLSRoute", namespace, "tls")["status"]["parents"] == [],
        10,
        "the route's entry for the gone Gateway removed",
    )


def test_cross_namespace_backend_needs_a_reference_grant(
    gw: Gw, cls: str, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    dev = device(make_device, namespace)
    other = f"{namespace}-b"
    kubectl("create", "namespace", other)
    try:
        gw.service(other, "api", TCP)
        gw.endpoints(other, "api", ["10.2.0.1"], 8080)
        gw.create(gateway("gw", namespace, listener("api", 9000, "TCP"), cls=cls))
        gw.create(
            route(
                "TCPRoute", "api", namespace, [parent("gw")], [backend("api", 80, namespace=other)]
            )
        )
        cond = gw.wait_condition(
            "TCPRoute", namespace, "api", "ResolvedRefs", "False", "RefNotPermitted", parent="gw"
        )
        assert f"no ReferenceGrant in namespace {other}" in cond["message"]
        programmed(gw, namespace)
        assert gw.members(namespace, "gw") == {}, "refused: no member"
        gw.create(grant(other, from_namespace=namespace, to_name="api"))
        gw.wait_condition("TCPRoute", namespace, "api", "ResolvedRefs", "True", parent="gw")
        wait_for(
            lambda: on_device(dev, namespace).get("gw-9000") == ["gw-9000-api-10-2-0-1-8080"],
            10,
            "served with the grant",
        )
        gw.delete("ReferenceGrant", other, "g")
        gw.wait_condition(
            "TCPRoute", namespace, "api", "ResolvedRefs", "False", "RefNotPermitted", parent="gw"
        )
        wait_for(lambda: on_device(dev, namespace).get("gw-9000") == [], 10, "revoked")
    finally:
        kubectl("delete", "namespace", other, "--wait=false")


def test_listeners_and_routes_say_what_is_wrong(
    gw: Gw, cls: str, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    device(make_device, namespace)
    kubectl("label", "namespace", namespace, "team=a")
    gw.create(
        gateway(
            "gw",
            namespace,
            listener("tcp", 9000, "TCP"),
            listener("clash-a", 9100, "TCP"),
            listener("clash-b", 9100, "HTTP"),
            listener("udp", 5353, "UDP"),
            listener("odd", 7000, "example.com/Quic"),
            listener(
                "picky",
                9200,
                "TCP",
                allowedRoutes={
                    "namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "b"}}}
                },
            ),
            cls=cls,
        )
    )
    gw.wait_condition("Gateway", namespace, "gw", "Accepted", "True", "ListenersNotValid")
    programmed(gw, namespace)
    for name in ("clash-a", "clash-b"):
        gw.wait_condition(
            "Gateway", namespace, "gw", "Conflicted", "True", "ProtocolConflict", listener=name
        )
        assert gw.condition("Gateway", namespace, "gw", "Accepted", listener=name)["status"] == (
            "False"
        )
    gw.wait_condition(
        "Gateway", namespace, "gw", "Accepted", "False", "UnsupportedProtocol", listener="odd"
    )
    gw.wait_condition("Gateway", namespace, "gw", "Accepted", "True", "Accepted", listener="udp")
    assert sorted(gw.generated(namespace, "gw", "VIP")) == ["gw-5353-udp", "gw-9000", "gw-9200"]

    wrong_section = route("TCPRoute", "nope", namespace, [parent("gw", sectionName="x")], [])
    wrong_section["spec"]["rules"] = [{"backendRefs": [backend("missing", 80)]}]
    gw.create(wrong_section)
    gw.wait_condition(
        "TCPRoute", namespace, "nope", "Accepted", "False", "NoMatchingParent", parent="gw"
    )
    gw.wait_condition(
        "TCPRoute", namespace, "nope", "ResolvedRefs", "False", "BackendNotFound", parent="gw"
    )
    gw.create(
        route(
            "TCPRoute",
            "picky",
            namespace,
            [parent("gw", sectionName="picky")],
            [backend("missing", 80)],
        )
    )
    gw.wait_condition(
        "TCPRoute", namespace, "picky", "Accepted", "False", "NotAllowedByListeners", parent="gw"
    )
    kubectl("label", "namespace", namespace, "team=b", "--overwrite")
    gw.wait_condition("TCPRoute", namespace, "picky", "Accepted", "True", "Accepted", parent="gw")
    wait_for(
        lambda: gw.listener(namespace, "gw", "picky")["attachedRoutes"] == 1,
        10,
        "attached once the namespace's labels allow it",
    )


def test_two_tcp_routes_on_one_listener_the_oldest_serves(
    gw: Gw, cls: str, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    dev = device(make_device, namespace)
    for name, address in (("one", "10.3.0.1"), ("two", "10.3.0.2")):
        gw.service(namespace, name, TCP)
        gw.endpoints(namespace, name, [address], 8080)
    gw.create(gateway("gw", namespace, listener("tcp", 9000, "TCP"), cls=cls))
    gw.create(route("TCPRoute", "older", namespace, [parent("gw")], [backend("one", 80)]))
    gw.wait_condition("TCPRoute", namespace, "older", "Accepted", "True", parent="gw")
    time.sleep(1.1)  # creationTimestamp has second precision
    gw.create(route("TCPRoute", "newer", namespace, [parent("gw")], [backend("two", 80)]))
    gw.wait_condition("TCPRoute", namespace, "newer", "Accepted", "True", parent="gw")
    wait_for(lambda: gw.listener(namespace, "gw", "tcp")["attachedRoutes"] == 2, 10, "2 routes")
    wait_for(
        lambda: on_device(dev, namespace) == {"gw-9000": ["gw-9000-older-10-3-0-1-8080"]},
        10,
        "the older route served",
    )
    gw.delete("TCPRoute", namespace, "older")
    wait_for(
        lambda: on_device(dev, namespace) == {"gw-9000": ["gw-9000-newer-10-3-0-2-8080"]},
        10,
        "the newer one takes over",
    )


def test_tenant_rules_apply_to_generated_trees(
    gw: Gw, cls: str, namespace: str, make_device: Callable[..., FakeDevice]
) -> None:
    """Member networks, the address policy and the namespace's access to devices hold for
    generated trees as for hand-made ones: they are ordinary VIP trees."""
    dev = device(make_device, namespace, memberNetworks=["10.1.0.0/24"])
    gw.service(namespace, "mixed", TCP)
    gw.endpoints(namespace, "mixed", ["10.1.0.1", "192.168.9.9"], 8080)
    gw.create(gateway("gw", namespace, listener("tcp", 9000, "TCP"), cls=cls))
    gw.create(route("TCPRoute", "r", namespace, [parent("gw")], [backend("mixed", 80)]))
    programmed(gw, namespace)
    refused = "gw-9000-r-192-168-9-9-8080"
    wait_for(
        lambda: (
            (gw.generated(namespace, "gw", "Member").get(refused, {}).get("status") or {}).get(
                "reason"
            )
            == "MemberAddressNotAllowed"
        ),
        10,
        "the member outside memberNetworks",
    )
    wait_for(
        lambda: on_device(dev, namespace) == {"gw-9000": ["gw-9000-r-10-1-0-1-8080"]},
        10,
        "the allowed member serves",
    )

    gw.create(
        gateway(
            "fixed",
            namespace,
            listener("tcp", 9001, "TCP"),
            cls=cls,
            addresses=[{"type": "IPAddress", "value": "192.0.2.50"}],
        )
    )
    cond = gw.wait_condition(
        "Gateway", namespace, "fixed", "Programmed", "False", "AddressNotUsable"
    )
    assert "AddressNotAllowed" in cond["message"], cond
    gw.patch(
        "Gateway",
        namespace,
        "fixed",
        {"spec": {"addresses": [{"type": "IPAddress", "value": "10.200.0.77"}]}},
    )
    programmed(gw, namespace, "fixed")
    assert gw.get("Gateway", namespace, "fixed")["status"]["addresses"] == [
        {"type": "IPAddress", "value": "10.200.0.77"}
    ]

    closed = f"{namespace}-closed"
    kubectl("create", "namespace", closed)
    try:
        gw.create(gateway("gw", closed, listener("tcp", 9000, "TCP"), cls=cls))
        cond = gw.wait_condition("Gateway", closed, "gw", "Programmed", "False", "NoResources")
        assert "NoEligibleDevice" in cond["message"]
    finally:
        gw.delete("Gateway", closed, "gw")
        wait_for(lambda: gw.get("Gateway", closed, "gw") is None, 30, "the closed one gone")
        kubectl("delete", "namespace", closed, "--wait=false")
