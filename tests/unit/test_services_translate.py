"""Services of type LoadBalancer → VIP trees, annotations, status.loadBalancer (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from lbaas.services.annotations import Options, parse
from lbaas.services.translate import (
    Placement,
    desired,
    generated_for,
    is_ours,
    load_balancer_status,
    member_name,
    placement_of,
    unchanged,
)

CLS = "lbaas.dev/lbaas"


def service(*ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLS,
            "ports": list(ports) or [{"port": 80, "targetPort": 8080}],
            **spec,
        },
    }


def slice_(
    *endpoints: tuple[str, bool | None], ports: list[dict[str, Any]] | None = None, name: str = "s"
) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "shop"},
        "addressType": "IPv4",
        "ports": ports if ports is not None else [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [a], **({} if ready is None else {"conditions": {"ready": ready}})}
            for a, ready in endpoints
        ],
    }


def names(want: Any, kind: str) -> list[str]:
    return sorted(name for k, name in want.objects if k == kind)


# ---- whose Service -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "take_unclassed", "expected"),
    [
        ({"type": "LoadBalancer", "loadBalancerClass": CLS}, False, True),
        ({"type": "LoadBalancer", "loadBalancerClass": "metallb.io/metallb"}, True, False),
        ({"type": "LoadBalancer"}, False, False),
        ({"type": "LoadBalancer"}, True, True),
        ({"type": "ClusterIP", "loadBalancerClass": CLS}, True, False),
        ({"type": "NodePort"}, True, False),
    ],
)
def test_is_ours(spec: dict[str, Any], take_unclassed: bool, expected: bool) -> None:
    assert is_ours({"spec": spec}, CLS, take_unclassed) is expected
    assert is_ours(None, CLS, True) is False


# ---- the trees ---------------------------------------------------------------------------------


def test_one_port_gives_vip_pool_monitor_and_a_member_per_ready_endpoint() -> None:
    slices = [slice_(("10.1.0.1", True), ("10.1.0.2", None), ("10.1.0.3", False))]
    want = desired(service(), slices, Options())
    assert names(want, "VIP") == names(want, "Pool") == names(want, "HealthMonitor") == ["web-80"]
    # ready unset counts as ready; ready false never becomes a member
    assert names(want, "Member") == ["web-80-10-1-0-1-8080", "web-80-10-1-0-2-8080"]
    vip = want.objects[("VIP", "web-80")]
    assert vip["spec"] == {
        "port": 80,
        "protocol": "TCP",
        "connectionLimit": -1,
        "adminStateUp": True,
    }
    assert vip["metadata"]["labels"]["lbaas.dev/service"] == "web"
    assert vip["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-1", "controller": True}
    ]
    assert want.objects[("HealthMonitor", "web-80")]["spec"]["type"] == "TCP"
    member = want.objects[("Member", "web-80-10-1-0-1-8080")]["spec"]
    assert (member["poolRef"], member["address"], member["port"]) == ("web-80", "10.1.0.1", 8080)


def test_named_target_port_resolves_per_slice() -> None:
    svc = service({"name": "http", "port": 80, "targetPort": "web"})
    slices = [
        slice_(("10.1.0.1", True), ports=[{"name": "http", "port": 8080}], name="a"),
        slice_(("10.1.0.2", True), ports=[{"name": "http", "port": 9090}], name="b"),
        slice_(("10.1.0.3", True), ports=[{"name": "other", "port": 7070}], name="c"),
    ]
    want = desired(svc, slices, Options())
    assert names(want, "Member") == ["web-80-10-1-0-1-8080", "web-80-10-1-0-2-9090"]
    assert want.unresolved == ["80 (targetPort web)"]


def test_numeric_target_port_is_the_fallback_and_duplicates_merge() -> None:
    slices = [
        slice_(("10.1.0.1", True), ports=[], name="a"),
        slice_(("10.1.0.1", True), name="b"),  # the same endpoint in two slices (a move)
        {**slice_(("example.com", True), name="c"), "addressType": "FQDN"},
    ]
    want = desired(service(), slices, Options())
    assert names(want, "Member") == ["web-80-10-1-0-1-8080"]


def test_udp_ports_are_udp_vips_without_a_monitor_and_sctp_is_left_out() -> None:
    svc = service(
        {"name": "web", "port": 80, "targetPort": 8080},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
        {"name": "sig", "port": 9, "protocol": "SCTP"},
    )
    slices = [
        slice_(("10.1.0.1", True), ports=[
            {"name": "web", "port": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 5353, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 5353, "protocol": "TCP"},
        ]),
    ]  # fmt: skip
    want = desired(svc, slices, Options(connection_limit=100), [bound_vip("web-53-udp")])
    assert names(want, "VIP") == ["web-53", "web-53-udp", "web-80"]
    assert want.unsupported == ["9/SCTP"]
    udp = want.objects[("VIP", "web-53-udp")]["spec"]
    assert udp["protocol"] == "UDP" and udp["port"] == 53 and udp["connectionLimit"] == -1
    assert want.objects[("Pool", "web-53-udp")]["spec"]["protocol"] == "UDP"
    assert ("HealthMonitor", "web-53-udp") not in want.objects  # no device checks UDP
    tcp = want.objects[("VIP", "web-53")]["spec"]
    assert tcp["protocol"] == "TCP" and tcp["connectionLimit"] == 100
    assert ("HealthMonitor", "web-53") in want.objects
    # The UDP and TCP ports of one number share nothing but the address.
    assert names(want, "Member") == [
        "web-53-10-1-0-1-5353", "web-53-udp-10-1-0-1-5353", "web-80-10-1-0-1-8080"
    ]  # fmt: skip
    for vip in ("web-53", "web-80"):  # they follow the UDP primary's placement
        assert want.objects[("VIP", vip)]["spec"]["address"] == "10.9.0.5"


def test_the_first_udp_port_is_the_primary() -> None:
    svc = service({"name": "web", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"})
    want = desired(svc, [], Options())
    assert names(want, "VIP") == ["web-53-udp"]  # created first, without an address
    assert want.waiting == ["web-80"]
    assert "address" not in want.objects[("VIP", "web-53-udp")]["spec"]
    bound = [bound_vip("web-53-udp", "10.9.0.7")]
    assert placement_of(svc, bound) == Placement("10.9.0.7", "lb1")
    want = desired(svc, [], Options(), bound)
    assert want.objects[("VIP", "web-80")]["spec"]["address"] == "10.9.0.7"


def test_a_udp_primary_placed_nowhere_lets_the_tcp_ports_be_served() -> None:
    svc = service({"name": "web", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "tls", "port": 443})  # fmt: skip
    refused = {"kind": "VIP", "metadata": {"name": "web-53-udp"}, "spec": {},
               "status": {"phase": "Error", "reason": "NoEligibleDevice"}}  # fmt: skip
    want = desired(svc, [], Options(), [refused])
    assert names(want, "VIP") == ["web-53-udp", "web-80"]  # port 80 is placed by itself
    assert "address" not in want.objects[("VIP", "web-80")]["spec"]
    assert want.waiting == ["web-443"]
    # Once port 80 is bound, every port follows it, the UDP one too (refused there, by name).
    want = desired(svc, [], Options(), [refused, bound_vip("web-80", "10.9.0.8")])
    for vip in ("web-53-udp", "web-443"):
        assert want.objects[("VIP", vip)]["spec"]["address"] == "10.9.0.8"
        assert want.objects[("VIP", vip)]["spec"]["deviceRef"] == "lb1"
    # A primary that is merely pending keeps the others waiting.
    pending = {**refused, "status": {"phase": "Pending"}}
    assert desired(svc, [], Options(), [pending]).waiting == ["web-80", "web-443"]


def bound_vip(name: str, address: str = "10.9.0.5", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "VIP",
        "metadata": {"name": name},
        "spec": spec,
        "status": {"address": address, "device": "lb1"},
    }


def test_other_ports_wait_for_the_primary_address_then_share_it() -> None:
    svc = service({"name": "http", "port": 80}, {"name": "https", "port": 443})
    first = desired(svc, [], Options(), [])
    assert names(first, "VIP") == ["web-80"]
    assert first.waiting == ["web-443"]
    assert "address" not in first.objects[("VIP", "web-80")]["spec"]

    primary = bound_vip("web-80")
    assert placement_of(svc, [primary]) == Placement("10.9.0.5", "lb1")
    second = desired(svc, [], Options(), [primary])
    assert names(second, "VIP") == ["web-443", "web-80"]
    spec = second.objects[("VIP", "web-443")]["spec"]
    assert (spec["address"], spec["deviceRef"]) == ("10.9.0.5", "lb1")
    # the primary keeps its allocated address in its status only: its spec does not change
    assert "address" not in second.objects[("VIP", "web-80")]["spec"]


def test_a_replaced_port_keeps_the_service_address() -> None:
    """Port 80 becomes 8080: the new VIP takes the address of the one being replaced, and
    keeps it while neither is bound (no spec flip-flop)."""
    svc = service({"name": "http", "port": 8080})
    old = {**bound_vip("web-80"), "metadata": {"name": "web-80", "deletionTimestamp": "x"}}
    want = desired(svc, [], Options(), [old])
    spec = want.objects[("VIP", "web-8080")]["spec"]
    assert (spec["address"], spec["deviceRef"]) == ("10.9.0.5", "lb1")
    created = {"kind": "VIP", "metadata": {"name": "web-8080"}, "spec": spec}
    again = desired(svc, [], Options(), [created])  # the old one gone, the new one unbound
    assert again.objects[("VIP", "web-8080")]["spec"] == spec


def test_requested_address_needs_no_wait() -> None:
    svc = service({"name": "http", "port": 80}, {"name": "https", "port": 443})
    want = desired(svc, [], Options(address="10.9.0.7"))
    assert {b["spec"]["address"] for (k, _), b in want.objects.items() if k == "VIP"} == {
        "10.9.0.7"
    }
    assert want.waiting == []


def test_annotations_and_affinity_reach_the_specs() -> None:
    annotations = {
        "lbaas.dev/device-selector": "tier=edge,zone=a",
        "lbaas.dev/device": "lb-1",
        "lbaas.dev/lb-method": "least-connections",
        "lbaas.dev/health-check-type": "http",
        "lbaas.dev/health-check-path": "/healthz",
        "lbaas.dev/health-check-interval": "2s",
        "lbaas.dev/connection-limit": "100",
    }
    options, problems = parse(annotations)
    assert problems == []
    want = desired(service(sessionAffinity="ClientIP"), [], options)
    vip = want.objects[("VIP", "web-80")]["spec"]
    assert vip["deviceSelector"] == {"matchLabels": {"tier": "edge", "zone": "a"}}
    assert vip["deviceRef"] == "lb-1"
    assert vip["connectionLimit"] == 100
    assert vip["sessionPersistence"] == {"type": "SOURCE_IP"}
    assert want.objects[("Pool", "web-80")]["spec"]["lbMethod"] == "LEAST_CONNECTIONS"
    monitor = want.objects[("HealthMonitor", "web-80")]["spec"]
    assert (monitor["type"], monitor["urlPath"], monitor["delay"], monitor["timeout"]) == (
        "HTTP",
        "/healthz",
        2,
        2,
    )
    options, _ = parse({"lbaas.dev/health-check-type": "none"})
    assert names(desired(service(), [], options), "HealthMonitor") == []


@pytest.mark.parametrize(
    ("annotations", "fragment"),
    [
        ({"lbaas.dev/lb-method": "fastest"}, "not one of round-robin"),
        ({"lbaas.dev/address": "10.0.0.300"}, "not an IP address"),
        ({"lbaas.dev/connection-limit": "many"}, "not a whole number"),
        ({"lbaas.dev/health-check-interval": "0"}, "outside 1..3600"),
        ({"lbaas.dev/health-check-path": "/x"}, "needs lbaas.dev/health-check-type"),
        (
            {"lbaas.dev/health-check-type": "http", "lbaas.dev/health-check-path": "no slash"},
            "not a URL path",
        ),
        ({"lbaas.dev/device-selector": "tier"}, "not label=value"),
        ({"lbaas.dev/device": "Not_A_Name"}, "not a Device name"),
        ({"lbaas.dev/lb-methd": "round-robin"}, "unknown annotation lbaas.dev/lb-methd"),
        ({"lbaas.dev/tls-secret": "Web_TLS"}, "lbaas.dev/tls-secret: 'Web_TLS' is not a Secret"),
        ({"lbaas.dev/tls-secret": "a,a"}, "names must be distinct"),
        ({"lbaas.dev/tls-ports": "443"}, "lbaas.dev/tls-ports needs lbaas.dev/tls-secret"),
    ],
)
def test_invalid_annotations_are_named(annotations: dict[str, str], fragment: str) -> None:
    _, problems = parse({"other.io/x": "ignored", **annotations})
    assert len(problems) == 1 and fragment in problems[0], problems


def test_load_balancer_ip_is_honoured_but_deprecated() -> None:
    options, problems = parse({}, "10.9.0.9")
    assert (options.address, problems) == ("10.9.0.9", [])
    assert "deprecated" in options.notes[0]
    _, problems = parse({"lbaas.dev/address": "10.9.0.8"}, "10.9.0.9")
    assert "differ" in problems[0]


def test_member_names_are_valid_object_names() -> None:
    assert member_name("web-80", "fd00::1", 8080) == "web-80-fd00--1-8080"
    assert member_name("web-80", "10.0.0.1", 80) == "web-80-10-0-0-1-80"


# ---- nothing to apply --------------------------------------------------------------------------


def test_unchanged_compares_with_server_defaults_and_ownership() -> None:
    want = desired(service(), [slice_(("10.1.0.1", True))], Options())
    body = want.objects[("Member", "web-80-10-1-0-1-8080")]
    stored = {
        "metadata": {**body["metadata"], "labels": {**body["metadata"]["labels"], "x": "y"}},
        "spec": {"poolRef": "web-80", "address": "10.1.0.1", "port": 8080},  # defaults omitted
        "status": {"phase": "Active"},
    }
    assert unchanged(stored, body)
    assert not unchanged({**stored, "spec": {**stored["spec"], "weight": 0}}, body)
    other_owner = {**stored["metadata"], "ownerReferences": [{"uid": "u-0", "controller": True}]}
    assert not unchanged({**stored, "metadata": other_owner}, body)


# ---- status.loadBalancer -----------------------------------------------------------------------


def vip(name: str, phase: str, address: str = "10.9.0.5", reason: str = "") -> dict[str, Any]:
    return {
        "kind": "VIP",
        "metadata": {"name": name},
        "status": {"phase": phase, "address": address, "reason": reason},
    }


def test_status_waits_until_every_vip_is_settled() -> None:
    svc = service({"name": "http", "port": 80}, {"name": "https", "port": 443})
    assert load_balancer_status(svc, {"web-80": vip("web-80", "Active")}) is None
    pending = {"web-80": vip("web-80", "Active"), "web-443": vip("web-443", "Pending")}
    assert load_balancer_status(svc, pending) is None
    both = {"web-80": vip("web-80", "Active"), "web-443": vip("web-443", "Active")}
    assert load_balancer_status(svc, both) == {"ingress": [{"ip": "10.9.0.5"}]}


def test_status_names_port_errors() -> None:
    svc = service(
        {"name": "http", "port": 80},
        {"name": "https", "port": 443},
        {"port": 53, "protocol": "UDP"},
        {"port": 9, "protocol": "SCTP"},
    )
    vips = {
        "web-80": vip("web-80", "Active"),
        "web-443": vip("web-443", "Error", reason="AddressInUse"),
        "web-53-udp": vip("web-53-udp", "Error", reason="NoEligibleDevice"),
    }
    assert load_balancer_status(svc, vips) == {
        "ingress": [
            {
                "ip": "10.9.0.5",
                "ports": [
                    {"port": 80, "protocol": "TCP"},
                    {"port": 443, "protocol": "TCP", "error": "lbaas.dev/AddressInUse"},
                    {"port": 53, "protocol": "UDP", "error": "lbaas.dev/NoEligibleDevice"},
                    {"port": 9, "protocol": "SCTP", "error": "lbaas.dev/ProtocolNotSupported"},
                ],
            }
        ]
    }
    failed = {"web-80": vip("web-80", "Error", reason="NoEligibleDevice")}
    assert load_balancer_status(service({"name": "http", "port": 80}), failed) == {}


def test_only_objects_owned_by_the_service_count_as_generated() -> None:
    body = desired(service(), [], Options()).objects[("VIP", "web-80")]
    assert generated_for(body, "web")
    assert not generated_for(body, "api")
    labelled_only = {"metadata": {"labels": {"lbaas.dev/service": "web"}}}
    assert not generated_for(labelled_only, "web")  # hand-made: never deleted by the operator


def test_services_can_be_turned_off() -> None:
    from lbaas.config import OperatorSettings
    from lbaas.kube.resources import ENDPOINT_SLICES, SERVICES
    from lbaas.runtime import informers_for

    kube: Any = None  # informers do no I/O until started
    on = informers_for(kube, OperatorSettings(), "controller")
    assert SERVICES in on and ENDPOINT_SLICES in on
    assert SERVICES not in informers_for(kube, OperatorSettings(), "agent")
    settings = OperatorSettings.from_env({"LBAAS_SERVICES": "false"})
    off = informers_for(kube, settings, "run", gateway=())
    assert SERVICES not in off and ENDPOINT_SLICES not in off
    # The Gateway API's routes name Services: on without the Services controller, they are read.
    assert SERVICES in informers_for(kube, settings, "run")
    with pytest.raises(ValueError):
        OperatorSettings(load_balancer_class="not a class/")
    with pytest.raises(ValueError):
        OperatorSettings(load_balancer_class="")


def test_tls_annotations_terminate_the_named_ports() -> None:
    ports = [
        {"name": "https", "port": 443, "targetPort": 8080},
        {"name": "alt", "port": 8443, "targetPort": 8080},
        {"name": "plain", "port": 80, "targetPort": 8080},
    ]
    annotations = {
        "lbaas.dev/tls-secret": "web-tls,api-tls",
        "lbaas.dev/tls-ports": "https,8443",
        "lbaas.dev/address": "10.9.0.1",  # every port at once, none waits for the first
    }
    options, problems = parse(annotations, None, ports)
    assert problems == []
    assert (options.tls_secrets, options.tls_ports) == (("web-tls", "api-tls"), {443, 8443})
    want = desired(service(*ports), [], options)
    for port in (443, 8443):
        vip = want.objects[("VIP", f"web-{port}")]["spec"]
        assert vip["protocol"] == "TERMINATED_HTTPS"
        assert vip["tls"]["certificateRefs"] == [{"name": "web-tls"}, {"name": "api-tls"}]
        assert want.objects[("Pool", f"web-{port}")]["spec"]["protocol"] == "HTTP"
    plain = want.objects[("VIP", "web-80")]["spec"]
    assert plain["protocol"] == "TCP" and "tls" not in plain
    # Only the Secret: every port; a port the Service does not have is a problem.
    options, _ = parse({"lbaas.dev/tls-secret": "web-tls"}, None, ports)
    assert all(options.terminates(p["port"]) for p in ports)
    _, problems = parse({**annotations, "lbaas.dev/tls-ports": "444"}, None, ports)
    assert problems == ["lbaas.dev/tls-ports: '444' is not a port of the Service"]
