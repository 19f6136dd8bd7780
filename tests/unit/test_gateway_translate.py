"""A Gateway and its routes as VIP trees: backends, weights, addresses, names (pure)."""

from __future__ import annotations

from typing import Any

from gwkit import (
    DictWorld,
    backend,
    endpoint_slice,
    gateway,
    grant,
    listener,
    parent,
    passthrough,
    route,
    service,
)

from lbaas.gateway import translate
from lbaas.gateway.attach import bind
from lbaas.gateway.backends import Backend, member_weights, resolve
from lbaas.gateway.listeners import verdicts
from lbaas.gateway.params import Parameters
from lbaas.gateway.spec import BackendRef
from lbaas.generated.owned import unchanged

KINDS = frozenset({"TCPRoute", "TLSRoute", "UDPRoute"})
TCP = {"name": "tcp", "port": 80, "targetPort": 8080, "protocol": "TCP"}


def world() -> DictWorld:
    return DictWorld().add(
        service("web", "shop", TCP),
        endpoint_slice("web", "shop", ["10.1.0.1", "10.1.0.2"], 8080),
        service("api", "backend", TCP),
        endpoint_slice("api", "backend", ["10.2.0.1"], 8080),
        service("dns", "shop", {"name": "dns", "port": 53, "protocol": "UDP"}),
    )


def resolved(r: dict[str, Any], w: DictWorld) -> tuple[list[Backend], Any]:
    return resolve(r, w)


def test_backends_resolve_to_service_endpoints() -> None:
    r = route("TCPRoute", "r", "shop", [parent("gw")], [backend("web", 80)])
    found, cond = resolved(r, world())
    assert (cond.ok, cond.reason) == (True, "ResolvedRefs")
    assert [b.endpoints for b in found] == [(("10.1.0.1", 8080), ("10.1.0.2", 8080))]


def test_invalid_backends_are_named_with_the_api_reasons() -> None:
    w = world()
    cases = {
        "InvalidKind": backend("web", 80, kind="Pod"),
        "BackendNotFound": backend("nope", 80),
        "RefNotPermitted": backend("api", 80, namespace="backend"),
        "UnsupportedProtocol": backend("dns", 53),
    }
    for reason, ref in cases.items():
        r = route("TCPRoute", "r", "shop", [parent("gw")], [ref, backend("web", 80)])
        found, cond = resolved(r, w)
        assert (cond.ok, cond.reason) == (False, reason), cond
        assert [b.ref.name for b in found] == ["web"], "the valid backend still serves"
    r = route("TCPRoute", "r", "shop", [parent("gw")], [backend("web", 81)])
    assert "has no port 81" in resolved(r, w)[1].message


def test_a_reference_grant_permits_a_cross_namespace_backend() -> None:
    w = world()
    r = route("TCPRoute", "r", "shop", [parent("gw")], [backend("api", 80, namespace="backend")])
    assert resolved(r, w)[1].reason == "RefNotPermitted"
    w.add(grant("backend", from_namespace="shop", from_kind="TLSRoute", name="tls-only"))
    assert resolved(r, w)[1].reason == "RefNotPermitted", "a grant for another kind"
    w.add(grant("backend", from_namespace="shop", to_name="other", name="other-svc"))
    assert resolved(r, w)[1].reason == "RefNotPermitted", "a grant for another Service"
    w.add(grant("backend", from_namespace="shop", to_name="api", name="api"))
    found, cond = resolved(r, w)
    assert cond.ok and found[0].endpoints == (("10.2.0.1", 8080),)
    assert not resolved(
        r, DictWorld().add(*[o for o in w.objects.values() if o["kind"] != "ReferenceGrant"])
    )[1].ok


def weights(*backends: tuple[int, int]) -> dict[tuple[str, int], int]:
    made = [
        Backend(
            BackendRef("", "Service", "ns", f"s{i}", 80, weight),
            {},
            tuple((f"10.0.{i}.{n}", 80) for n in range(count)),
        )
        for i, (weight, count) in enumerate(backends)
    ]
    return member_weights(made)


def test_weights_split_connections_per_service_not_per_endpoint() -> None:
    assert set(weights((1, 3)).values()) == {1}, "equal shares: weight 1, no feature needed"
    split = weights((80, 1), (20, 4))  # 80 % to one endpoint, 20 % over four
    assert split[("10.0.0.0", 80)] == 256
    assert {split[(f"10.0.1.{n}", 80)] for n in range(4)} == {16}  # 5 % each: 256 / 16
    share = sum(w for (a, _), w in split.items() if a.startswith("10.0.1.")) / sum(split.values())
    assert abs(share - 0.2) < 0.01
    assert weights((0, 2), (1, 1))[("10.0.0.0", 80)] == 0, "weight 0: no traffic"
    assert weights((1, 0)) == {}


GW = gateway(
    "gw", "shop", listener("tcp", 9000, "TCP"), passthrough("tls", 443), listener("web", 80, "HTTP")
)


def desired(
    gw: dict[str, Any],
    routes: list[dict[str, Any]],
    vips: list[dict[str, Any]] = (),
    params: Parameters | None = None,
    w: DictWorld | None = None,
) -> translate.Desired:
    w = w or world()
    params = params or Parameters()
    v = verdicts(gw, w.route_kinds)
    b = bind(gw, v, routes, w)
    address = translate.requested_address(gw, params)
    assert not isinstance(address, translate.Cond)
    return translate.desired(
        gw, verdicts=v, bindings=b, world=w, params=params, address=address, vips=list(vips)
    )


def bound_vip(body: dict[str, Any], address: str, device: str) -> dict[str, Any]:
    return {**body, "status": {"address": address, "device": device}}


def test_the_first_listener_is_placed_and_the_others_follow_its_address() -> None:
    r = route("TCPRoute", "r", "shop", [parent("gw", sectionName="tcp")], [backend("web", 80)])
    first = desired(GW, [r])
    assert first.waiting == ["gw-443", "gw-80"]
    assert sorted(first.objects) == [
        ("HealthMonitor", "gw-9000-r"),
        ("Member", "gw-9000-r-10-1-0-1-8080"),
        ("Member", "gw-9000-r-10-1-0-2-8080"),
        ("Pool", "gw-9000-r"),
        ("VIP", "gw-9000"),
    ]
    vip = first.objects[("VIP", "gw-9000")]
    assert "address" not in vip["spec"] and vip["spec"]["protocol"] == "TCP"
    assert vip["metadata"]["labels"]["lbaas.dev/gateway"] == "gw"
    (owner,) = vip["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Gateway", "gw", True)
    then = desired(GW, [r], [bound_vip(vip, "10.9.0.7", "lb1")])
    assert then.waiting == []
    assert ("L7Policy", "gw-80-not-found") in then.objects, "an HTTP VIP answers 404 by itself"
    tls, web = then.objects[("VIP", "gw-443")]["spec"], then.objects[("VIP", "gw-80")]["spec"]
    assert (tls["address"], tls["deviceRef"], tls["protocol"]) == ("10.9.0.7", "lb1", "HTTPS")
    assert (web["address"], web["deviceRef"], web["protocol"]) == ("10.9.0.7", "lb1", "HTTP")
    assert "address" not in then.objects[("VIP", "gw-9000")]["spec"], "the primary's stays unset"
    again = desired(GW, [r], [bound_vip(vip, "10.9.0.7", "lb1")])
    assert again.objects == then.objects, "the same input, the same objects"
    assert unchanged(bound_vip(vip, "10.9.0.7", "lb1"), then.objects[("VIP", "gw-9000")])


def test_an_explicit_address_goes_to_every_vip_at_once() -> None:
    gw = gateway(
        "gw",
        "shop",
        listener("a", 1, "TCP"),
        listener("b", 2, "TCP"),
        addresses=[{"type": "IPAddress", "value": "10.9.0.9"}],
    )
    made = desired(gw, [])
    assert made.waiting == []
    assert {made.objects[("VIP", v)]["spec"]["address"] for v in ("gw-1", "gw-2")} == {"10.9.0.9"}


def test_addresses_the_operator_cannot_serve() -> None:
    p = Parameters()
    cases = {
        "Hostname": [{"type": "Hostname", "value": "lb.example.com"}],
        "one address per Gateway": [{"value": "10.0.0.1"}, {"value": "10.0.0.2"}],
        "not an IP address": [{"type": "IPAddress", "value": "ten"}],
    }
    for text, addresses in cases.items():
        cond = translate.requested_address(gateway("gw", "ns", addresses=addresses), p)
        assert isinstance(cond, translate.Cond) and cond.reason == "UnsupportedAddress"
        assert text in cond.message
    denied = Parameters(static_addresses="Denied")
    gw = gateway("gw", "ns", addresses=[{"value": "10.0.0.1"}])
    assert isinstance(translate.requested_address(gw, denied), translate.Cond)
    assert (
        translate.requested_address(gateway("gw", "ns", addresses=[{"type": "IPAddress"}]), denied)
        is None
    ), "an empty value: allocate one"


def test_gateway_acceptance() -> None:
    v = verdicts(GW, KINDS)
    assert translate.accepted(GW, Parameters(), v, None).reason == "Accepted"
    assert translate.accepted(GW, "ConfigMap x not found", v, None).reason == "InvalidParameters"
    infra = gateway(
        "gw",
        "ns",
        listener("a", 1, "TCP"),
        infrastructure={"parametersRef": {"group": "", "kind": "ConfigMap", "name": "x"}},
    )
    assert translate.accepted(infra, Parameters(), verdicts(infra, KINDS), None).ok is False
    some_bad = gateway("gw", "ns", listener("a", 1, "TCP"), listener("b", 2, "SCTP"))
    cond = translate.accepted(some_bad, Parameters(), verdicts(some_bad, KINDS), None)
    assert (cond.ok, cond.reason) == (True, "ListenersNotValid") and "listener b" in cond.message
    all_bad = gateway("gw", "ns", listener("b", 2, "SCTP"))
    cond = translate.accepted(all_bad, Parameters(), verdicts(all_bad, KINDS), None)
    assert (cond.ok, cond.reason) == (False, "ListenersNotValid")


def test_cross_namespace_routes_get_their_own_pool_names_and_class_parameters_apply() -> None:
    gw = gateway(
        "gw", "shop", listener("tcp", 9000, "TCP", allowedRoutes={"namespaces": {"from": "All"}})
    )
    w = world().add(grant("backend", from_namespace="backend"))
    r = route("TCPRoute", "r", "backend", [parent("gw", namespace="shop")], [backend("api", 80)])
    params = Parameters.model_validate(
        {
            "deviceSelector": {"matchLabels": {"tier": "gw"}},
            "lbMethod": "LEAST_CONNECTIONS",
            "healthMonitor": "None",
        }
    )
    made = desired(gw, [r], params=params, w=w)
    assert ("Pool", "gw-9000-backend-r") in made.objects
    assert made.objects[("Pool", "gw-9000-backend-r")]["spec"]["lbMethod"] == "LEAST_CONNECTIONS"
    assert made.objects[("VIP", "gw-9000")]["spec"]["deviceSelector"] == {
        "matchLabels": {"tier": "gw"}
    }
    assert not any(k == "HealthMonitor" for k, _ in made.objects)
    assert {o["metadata"]["namespace"] for o in made.objects.values()} == {"shop"}


def test_https_listeners_sharing_a_port_share_one_terminating_vip() -> None:
    def https(name: str, host: str, *secrets: str) -> dict[str, Any]:
        refs = [{"group": "", "kind": "Secret", "name": s} for s in secrets]
        return listener(
            name, 443, "HTTPS", hostname=host, tls={"mode": "Terminate", "certificateRefs": refs}
        )

    gw = gateway(
        "gw",
        "shop",
        https("a", "a.example.com", "a-cert"),
        https("b", "b.example.com", "b-cert", "a-cert"),
    )
    made = desired(gw, [])
    vip = made.objects[("VIP", "gw-443")]["spec"]
    assert vip["protocol"] == "TERMINATED_HTTPS"
    assert vip["tls"]["certificateRefs"] == [{"name": "a-cert"}, {"name": "b-cert"}]
    assert ("L7Policy", "gw-443-not-found") in made.objects, "HTTPRoutes are served there too"
