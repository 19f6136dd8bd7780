"""Routes attaching to a Gateway's listeners; which route a port serves (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from gwkit import DictWorld, backend, gateway, listener, parent, passthrough, route

from lbaas.gateway.attach import bind, hostnames_intersect
from lbaas.gateway.listeners import verdicts
from lbaas.gateway.spec import ref_of

KINDS = frozenset({"TCPRoute", "TLSRoute", "UDPRoute"})


def bound(gw: dict[str, Any], *routes: dict[str, Any], world: DictWorld | None = None) -> Any:
    world = world or DictWorld()
    return bind(gw, verdicts(gw, KINDS), list(routes), world)


def reasons(bindings: Any, r: dict[str, Any]) -> list[str]:
    ref = ref_of(r)
    return [bindings.accepted(ref, a).reason for a in bindings.attachments[ref]]


GW = gateway(
    "gw",
    "shop",
    listener("tcp", 9000, "TCP"),
    listener("tcp2", 9001, "TCP"),
    passthrough("tls", 443, hostname="*.example.com"),
    listener("web", 80, "HTTP"),
    listener("open", 9100, "TCP", allowedRoutes={"namespaces": {"from": "All"}}),
    listener(
        "picky",
        9200,
        "TCP",
        allowedRoutes={
            "namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}
        },
    ),
)


def tcp(name: str, namespace: str = "shop", **ref: Any) -> dict[str, Any]:
    return route(
        "TCPRoute", name, namespace, [parent("gw", namespace="shop", **ref)], [backend("svc", 80)]
    )


def test_section_name_and_port_select_listeners() -> None:
    by_section, by_port, both = (
        tcp("a", sectionName="tcp"),
        tcp("b", port=9001),
        tcp("c", sectionName="tcp", port=9001),
    )
    b = bound(GW, by_section, by_port, both)
    assert [a.listeners for a in b.attachments[ref_of(by_section)]] == [("tcp",)]
    assert [a.listeners for a in b.attachments[ref_of(by_port)]] == [("tcp2",)]
    assert reasons(b, both) == ["NoMatchingParent"]
    assert "named tcp and on port 9001" in b.attachments[ref_of(both)][0].accepted.message


def test_a_whole_gateway_parent_attaches_to_every_listener_taking_the_kind() -> None:
    r = tcp("a")
    (attachment,) = bound(GW, r).attachments[ref_of(r)]
    assert attachment.listeners == ("tcp", "tcp2", "open")  # not picky (namespace), not tls/web


def test_kinds_and_namespaces_not_allowed() -> None:
    wrong_kind = tcp("a", sectionName="tls")
    other_ns = tcp("b", "elsewhere", sectionName="tcp")
    everyone = tcp("c", "elsewhere", sectionName="open")
    b = bound(GW, wrong_kind, other_ns, everyone)
    assert reasons(b, wrong_kind) == ["NotAllowedByListeners"]
    assert reasons(b, other_ns) == ["NotAllowedByListeners"]
    assert reasons(b, everyone) == ["Accepted"], "no ReferenceGrant needed: allowedRoutes says"


def test_selector_namespaces_follow_the_namespace_labels() -> None:
    r = tcp("a", "team-ns", sectionName="picky")
    world = DictWorld()
    assert reasons(bound(GW, r, world=world), r) == ["NotAllowedByListeners"]
    world.labels["team-ns"] = {"team": "a"}
    assert reasons(bound(GW, r, world=world), r) == ["Accepted"]


@pytest.mark.parametrize(
    ("listener_host", "route_hosts", "match"),
    [
        (None, ["a.example.com"], True),
        ("*.example.com", [], True),
        ("*.example.com", ["a.example.com"], True),
        ("*.example.com", ["a.b.example.com"], True),
        ("*.example.com", ["example.com"], False),
        ("a.example.com", ["*.example.com"], True),
        ("*.example.com", ["*.a.example.com"], True),
        ("a.example.com", ["b.example.com", "a.example.com"], True),
        ("a.example.com", ["b.example.com"], False),
        ("*.example.com", ["a.example.org"], False),
    ],
)
def test_hostnames_intersect(
    listener_host: str | None, route_hosts: list[str], match: bool
) -> None:
    assert hostnames_intersect(listener_host, route_hosts) is match


def test_tls_route_without_a_matching_hostname() -> None:
    r = route(
        "TLSRoute", "t", "shop", [parent("gw")], [backend("svc", 443)], hostnames=["a.example.org"]
    )
    assert reasons(bound(GW, r), r) == ["NoMatchingListenerHostname"]


def test_tcp_listener_serves_the_oldest_route_and_counts_all() -> None:
    older, newer = tcp("older", sectionName="tcp"), tcp("newer", sectionName="tcp")
    b = bound(GW, newer, older)  # the order given does not matter: age does
    assert ref_of(b.served["gw-9000"]) == ref_of(older)
    assert reasons(b, older) == reasons(b, newer) == ["Accepted"]
    assert b.attached["tcp"] == 2


def test_tls_listener_refuses_a_second_route_it_cannot_route_by_sni() -> None:
    older = route(
        "TLSRoute", "a", "shop", [parent("gw")], [backend("svc", 443)], hostnames=["a.example.com"]
    )
    newer = route(
        "TLSRoute", "b", "shop", [parent("gw")], [backend("svc", 443)], hostnames=["b.example.com"]
    )
    b = bound(GW, older, newer)
    assert ref_of(b.served["gw-443"]) == ref_of(older)
    assert reasons(b, older) == ["Accepted"]
    assert reasons(b, newer) == ["UnsupportedValue"]
    assert "SNI" in b.accepted(ref_of(newer), b.attachments[ref_of(newer)][0]).message
    assert b.attached["tls"] == 1, "a refused route is not attached"


def test_parent_refs_to_other_gateways_are_not_ours() -> None:
    r = route(
        "TCPRoute",
        "a",
        "shop",
        [parent("other"), parent("gw", sectionName="tcp")],
        [backend("svc", 80)],
    )
    (attachment,) = bound(GW, r).attachments[ref_of(r)]
    assert attachment.parent.name == "gw"
