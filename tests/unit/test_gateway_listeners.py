"""A Gateway's listeners: accepted, conflicted, unsupported, their kinds and VIPs (pure)."""

from __future__ import annotations

from gwkit import gateway, listener, passthrough

from lbaas.gateway.listeners import verdicts

KINDS = frozenset({"TCPRoute", "TLSRoute", "UDPRoute"})


def by_name(*listeners: dict) -> dict:
    return {v.listener.name: v for v in verdicts(gateway("gw", "ns", *listeners), KINDS)}


def test_served_protocols_get_a_vip_per_port() -> None:
    found = by_name(
        listener("tcp", 9000, "TCP"),
        passthrough("tls", 443),
        listener("web", 80, "HTTP"),
        listener("web2", 80, "HTTP", hostname="b.example.com"),
    )
    assert {n: v.accepted.reason for n, v in found.items()} == dict.fromkeys(found, "Accepted")
    assert {n: v.vip for n, v in found.items()} == {
        "tcp": "gw-9000",
        "tls": "gw-443",
        "web": "gw-80",
        "web2": "gw-80",
    }
    assert found["tcp"].kinds == ("TCPRoute",) and found["tls"].kinds == ("TLSRoute",)
    assert found["web"].kinds == ()  # HTTPRoutes are not translated (watched) here
    assert all(
        v.conflicted.reason == "NoConflicts" and v.conflicted.ok is False for v in found.values()
    )


def test_what_cannot_be_served_is_refused_with_the_api_reasons() -> None:
    found = by_name(
        listener("terminate", 8443, "TLS", tls={"mode": "Terminate", "certificateRefs": [{}]}),
        listener("odd", 7000, "example.com/Quic"),
    )
    reasons = {n: (v.accepted.ok, v.accepted.reason) for n, v in found.items()}
    assert reasons == {
        "terminate": (False, "UnsupportedValue"),
        "odd": (False, "UnsupportedProtocol"),
    }
    assert all(v.vip is None for v in found.values())


def test_a_udp_listener_is_a_udp_vip_of_its_own_beside_tcp_on_the_same_port() -> None:
    found = by_name(listener("dns", 53, "UDP"), listener("dns-tcp", 53, "TCP"))
    assert {n: (v.accepted.reason, v.vip) for n, v in found.items()} == {
        "dns": ("Accepted", "gw-53-udp"),
        "dns-tcp": ("Accepted", "gw-53"),
    }
    assert found["dns"].kinds == ("UDPRoute",) and found["dns-tcp"].kinds == ("TCPRoute",)
    assert all(v.conflicted.ok is False for v in found.values())


def test_protocols_sharing_a_port_all_conflict_and_none_wins() -> None:
    found = by_name(
        listener("tcp", 80, "TCP"), listener("web", 80, "HTTP"), listener("other", 81, "TCP")
    )
    for name in ("tcp", "web"):
        assert (found[name].conflicted.ok, found[name].conflicted.reason) == (
            True,
            "ProtocolConflict",
        )
        assert not found[name].accepted.ok and found[name].vip is None
        assert "TCP, HTTP" in found[name].conflicted.message or "HTTP, TCP" in (
            found[name].conflicted.message
        )
    assert found["other"].accepted.ok and found["other"].conflicted.ok is False


def test_tls_passthrough_listeners_sharing_a_port_keep_the_first() -> None:
    found = by_name(
        passthrough("a", 443, hostname="a.example.com"),
        passthrough("b", 443, hostname="b.example.com"),
    )
    assert found["a"].accepted.ok and found["a"].vip == "gw-443"
    assert (found["b"].accepted.ok, found["b"].accepted.reason) == (False, "UnsupportedValue")
    assert "SNI" in found["b"].accepted.message and found["b"].vip is None


def test_allowed_route_kinds_are_checked_and_the_valid_ones_listed() -> None:
    found = by_name(
        listener(
            "only-bad", 9000, "TCP", allowedRoutes={"kinds": [{"group": "x.io", "kind": "X"}]}
        ),
        listener(
            "mixed",
            9001,
            "TCP",
            allowedRoutes={
                "kinds": [
                    {"group": "gateway.networking.k8s.io", "kind": "TCPRoute"},
                    {"group": "gateway.networking.k8s.io", "kind": "TLSRoute"},
                ]
            },
        ),
        listener(
            "good",
            9002,
            "TCP",
            allowedRoutes={"kinds": [{"group": "gateway.networking.k8s.io", "kind": "TCPRoute"}]},
        ),
    )
    assert (found["only-bad"].resolved.reason, found["only-bad"].kinds) == ("InvalidRouteKinds", ())
    assert found["mixed"].resolved.reason == "InvalidRouteKinds"
    assert found["mixed"].kinds == ("TCPRoute",)
    assert found["good"].resolved.ok and found["good"].kinds == ("TCPRoute",)
    assert all(v.accepted.ok for v in found.values()), "kinds do not make a listener invalid"


def test_route_kinds_the_cluster_does_not_serve_are_not_supported() -> None:
    (verdict,) = verdicts(
        gateway("gw", "ns", listener("tcp", 9000, "TCP")), frozenset({"TLSRoute"})
    )
    assert verdict.kinds == () and verdict.accepted.ok


def test_vip_names_stay_object_names() -> None:
    long = "g" * 250
    (verdict,) = verdicts(gateway(long, "ns", listener("tcp", 65535, "TCP")), KINDS)
    assert verdict.vip is not None and len(verdict.vip) <= 253
    (other,) = verdicts(gateway(long, "ns", listener("tcp", 65534, "TCP")), KINDS)
    assert other.vip != verdict.vip


def https(name: str, port: int, *refs: dict, **extra: object) -> dict:
    return listener(
        name, port, "HTTPS", tls={"mode": "Terminate", "certificateRefs": list(refs)}, **extra
    )


def secret(name: str, **extra: str) -> dict:
    return {"group": "", "kind": "Secret", "name": name, **extra}


def test_https_listeners_name_the_secrets_of_their_namespace() -> None:
    from gwkit import DictWorld, grant

    world = DictWorld().add(
        grant("certs", from_namespace="ns", from_kind="Gateway", to_kind="Secret")
    )
    gw = gateway(
        "gw",
        "ns",
        https("good", 443, secret("a"), secret("b"), secret("a")),
        https("mixed", 8443, secret("a"), {"group": "x.io", "kind": "Cert", "name": "c"}),
        https("elsewhere", 9443, secret("s", namespace="other")),
        https("granted", 10443, secret("s", namespace="certs")),
        https("options", 11443, secret("a")),
    )
    gw["spec"]["listeners"][4]["tls"]["options"] = {"example.com/ciphers": "x"}
    found = {v.listener.name: v for v in verdicts(gw, KINDS, world)}
    good = found["good"]
    assert (good.accepted.ok, good.resolved.ok, good.vip, good.certificates) == (
        True,
        True,
        "gw-443",
        ("a", "b"),
    )
    mixed = found["mixed"]
    assert mixed.vip == "gw-8443" and mixed.certificates == ("a",), "served with what is valid"
    assert (mixed.resolved.ok, mixed.resolved.reason) == (False, "InvalidCertificateRef")
    elsewhere = found["elsewhere"]
    assert (elsewhere.resolved.reason, elsewhere.vip) == ("RefNotPermitted", None)
    assert elsewhere.accepted.ok, "accepted, but nothing to serve"
    granted = found["granted"]
    assert (granted.resolved.reason, granted.vip) == ("InvalidCertificateRef", None)
    assert "copy it to ns" in granted.resolved.message
    assert (found["options"].accepted.ok, found["options"].accepted.reason) == (
        False,
        "UnsupportedValue",
    )
