"""GatewayClass parameters and features; Gateway and route statuses; discovery (pure)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from gwkit import CONTROLLER, DictWorld, backend, gateway, gateway_class, listener, parent, route

from lbaas.config import OperatorSettings
from lbaas.gateway import classes, discovery, features
from lbaas.gateway.attach import bind
from lbaas.gateway.index import RouteIndex
from lbaas.gateway.listeners import verdicts
from lbaas.gateway.params import Parameters, parameters
from lbaas.gateway.spec import Ref, ref_of
from lbaas.gateway.status import gateway_status, parent_entry, route_parents
from lbaas.generated.sharing import Placement
from lbaas.kube.resources import GATEWAY_KINDS, GATEWAYS, REFERENCE_GRANTS, TCP_ROUTES
from lbaas.status import Cond

NS = "lbaas-system"
KINDS = frozenset({"TCPRoute", "TLSRoute", "UDPRoute"})


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}


def ref(name: str, namespace: str = NS, kind: str = "ConfigMap", group: str = "") -> dict:
    return {"group": group, "kind": kind, "name": name, "namespace": namespace}


def test_parameters_from_a_config_map_of_the_operator_namespace() -> None:
    w = DictWorld().add(
        config_map(
            "good",
            deviceSelector="matchLabels: {tier: gw}",
            staticAddresses="Denied",
            lbMethod="SOURCE_IP",
            healthMonitor="None",
        ),
        config_map("typo", lbMethod="FASTEST"),
        config_map("extra", colour="blue"),
        config_map("yaml", deviceSelector="matchLabels: [unclosed"),
    )
    got = parameters(gateway_class(params=ref("good")), w, NS)
    assert isinstance(got, Parameters)
    assert got.device_selector is not None and got.device_selector.matches({"tier": "gw"})
    assert (got.static_addresses, got.lb_method, got.health_monitor) == (
        "Denied",
        "SOURCE_IP",
        "None",
    )
    assert parameters(gateway_class(), w, NS) == Parameters()
    errors = {
        "typo": parameters(gateway_class(params=ref("typo")), w, NS),
        "extra": parameters(gateway_class(params=ref("extra")), w, NS),
        "yaml": parameters(gateway_class(params=ref("yaml")), w, NS),
        "missing": parameters(gateway_class(params=ref("nope")), w, NS),
        "elsewhere": parameters(gateway_class(params=ref("good", namespace="x")), w, NS),
        "kind": parameters(gateway_class(params=ref("good", kind="Secret")), w, NS),
    }
    assert all(isinstance(e, str) for e in errors.values()), errors
    assert "lbMethod" in str(errors["typo"]) and "colour" in str(errors["extra"])
    assert "not YAML" in str(errors["yaml"]) and "not found" in str(errors["missing"])
    assert f"operator's namespace {NS}" in str(errors["elsewhere"])
    assert "takes a ConfigMap" in str(errors["kind"])


def device(name: str, features_: list[str] | None, **labels: str) -> dict[str, Any]:
    return {
        "kind": "Device",
        "metadata": {"name": name, "labels": labels},
        "status": {} if features_ is None else {"features": features_},
    }


def test_supported_features_are_what_every_usable_device_has() -> None:
    assert features.unknown_names() == [], "every operator feature named exists"
    tcp_only = device("a", ["protocol.tcp"], tier="gw")
    both = device("b", ["protocol.tcp", "protocol.https"], tier="gw")
    other = device("c", ["protocol.tcp", "protocol.https"], tier="other")
    w = DictWorld()
    status = classes.class_status(gateway_class(), w, namespace=NS, devices=[tcp_only, both])
    names = [f["name"] for f in status["supportedFeatures"]]
    assert names == sorted(names)
    assert names == [
        "Gateway",
        "GatewayAddressEmpty",
        "GatewayStaticAddresses",
        "ReferenceGrant",
        "TCPRoute",
    ]
    w.add(config_map("p", deviceSelector="matchLabels: {tier: other}", staticAddresses="Denied"))
    status = classes.class_status(
        gateway_class(params=ref("p")), w, namespace=NS, devices=[tcp_only, both, other]
    )
    assert [f["name"] for f in status["supportedFeatures"]] == [
        "Gateway",
        "GatewayAddressEmpty",
        "ReferenceGrant",
        "TCPRoute",
        "TLSRoute",
    ]
    assert status["conditions"][0]["reason"] == "Accepted"
    none = classes.class_status(gateway_class(), w, namespace=NS, devices=[device("x", None)])
    assert none["supportedFeatures"] == [], "no device reported features: nothing promised"
    bad = classes.class_status(gateway_class(params=ref("nope")), w, namespace=NS, devices=[])
    (cond,) = bad["conditions"]
    assert (cond["status"], cond["reason"], cond["observedGeneration"]) == (
        "False",
        "InvalidParameters",
        1,
    )
    assert classes.is_ours(gateway_class()) and not classes.is_ours(
        gateway_class(controller="example.com/other")
    )


def vip(name: str, phase: str, reason: str = "", generation: int = 1, **status: Any) -> dict:
    return {
        "kind": "VIP",
        "metadata": {"name": name, "generation": generation},
        "status": {"phase": phase, "reason": reason, "observedGeneration": 1, **status},
    }


GW = gateway(
    "gw",
    "shop",
    listener("a", 9000, "TCP"),
    listener("b", 9001, "TCP"),
    listener("c", 9002, "SCTP"),
)
OK = Cond("Accepted", True, "Accepted")
HERE = Placement("10.0.0.1", "lb1")


def status_of(vips: dict[str, dict], placement: Placement | None = HERE, **kw: Any) -> dict:
    return gateway_status(
        GW,
        accepted=OK,
        verdicts=verdicts(GW, KINDS),
        vips=vips,
        attached={"a": 2},
        placement=placement,
        **kw,
    )


def conditions(entries: list[dict]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entries}


def test_gateway_status_follows_its_vips() -> None:
    active = {"gw-9000": vip("gw-9000", "Active"), "gw-9001": vip("gw-9001", "Active")}
    status = status_of(active)
    assert conditions(status["conditions"])["Programmed"] == ("True", "Programmed")
    assert status["addresses"] == [{"type": "IPAddress", "value": "10.0.0.1"}]
    listeners = {entry["name"]: entry for entry in status["listeners"]}
    assert listeners["a"]["attachedRoutes"] == 2 and listeners["b"]["attachedRoutes"] == 0
    assert conditions(listeners["c"]["conditions"])["Accepted"] == ("False", "UnsupportedProtocol")
    assert conditions(listeners["c"]["conditions"])["Programmed"] == ("False", "Invalid")
    every = status["conditions"] + [c for e in status["listeners"] for c in e["conditions"]]
    assert {c["observedGeneration"] for c in every} == {1}
    stale = {**active, "gw-9001": vip("gw-9001", "Active", generation=2)}
    assert conditions(status_of(stale)["conditions"])["Programmed"] == ("False", "Pending")
    waiting = status_of({}, None)
    assert conditions(waiting["conditions"])["Programmed"] == ("False", "AddressNotAssigned")
    assert waiting["addresses"] is None
    full = {"gw-9000": vip("gw-9000", "Error", "NoEligibleDevice", message="no device")}
    assert conditions(status_of(full, None)["conditions"])["Programmed"] == ("False", "NoResources")
    taken = {**active, "gw-9001": vip("gw-9001", "Error", "AddressInUse", message="VIP x")}
    status = status_of(taken)
    assert conditions(status["conditions"])["Programmed"] == ("False", "AddressNotUsable")
    b = next(e for e in status["listeners"] if e["name"] == "b")
    assert conditions(b["conditions"])["Accepted"] == ("False", "PortUnavailable")
    problems = status_of(active, problems=["not generated: VIP gw-9000"])
    assert conditions(problems["conditions"])["Programmed"] == ("False", "Invalid")


def test_transition_times_move_only_with_the_status() -> None:
    active = {"gw-9000": vip("gw-9000", "Active"), "gw-9001": vip("gw-9001", "Active")}
    first = status_of(active)
    old = "2020-01-01T00:00:00Z"
    for cond in first["conditions"]:
        cond["lastTransitionTime"] = old
    GW["status"] = first
    try:
        again = status_of(active)
        assert {c["lastTransitionTime"] for c in again["conditions"]} == {old}
        changed = status_of({"gw-9000": vip("gw-9000", "Pending", "Scheduled")})
        times = {c["type"]: c["lastTransitionTime"] for c in changed["conditions"]}
        assert times["Accepted"] == old and times["Programmed"] != old
    finally:
        GW.pop("status")


def test_route_parents_keep_other_controllers_entries() -> None:
    gw = gateway("gw", "shop", listener("tcp", 9000, "TCP"))
    r = route("TCPRoute", "r", "shop", [parent("gw"), parent("theirs")], [backend("svc", 80)])
    theirs = {"parentRef": parent("theirs"), "controllerName": "example.com/x", "conditions": []}
    stale = {"parentRef": parent("gone"), "controllerName": CONTROLLER, "conditions": []}
    r["status"] = {"parents": [theirs, stale]}
    b = bind(gw, verdicts(gw, KINDS), [r], DictWorld())
    (attachment,) = b.attachments[ref_of(r)]
    entry = parent_entry(
        r,
        attachment,
        [b.accepted(ref_of(r), attachment), Cond("ResolvedRefs", False, "BackendNotFound", "no")],
    )
    assert entry["controllerName"] == CONTROLLER and entry["parentRef"] == parent("gw")
    assert [(c["type"], c["reason"], c["observedGeneration"]) for c in entry["conditions"]] == [
        ("Accepted", "Accepted", 1),
        ("ResolvedRefs", "BackendNotFound", 1),
    ]
    assert route_parents(r, [entry]) == [theirs, entry], "ours replaced, theirs kept"


def test_the_route_index_follows_parents_and_backends() -> None:
    index = RouteIndex()
    r = route(
        "TCPRoute",
        "r",
        "shop",
        [parent("gw"), parent("gw2", namespace="infra")],
        [backend("svc", 80), backend("api", 80, namespace="backend")],
    )
    index.add(r)
    me = Ref("TCPRoute", "shop", "r")
    assert index.of_gateway(("shop", "gw")) == index.of_gateway(("infra", "gw2")) == {me}
    assert index.of_service(("backend", "api")) == {me}
    assert index.with_backends_in("backend") == {me} and index.in_namespace("shop") == {me}
    r["spec"]["parentRefs"] = [parent("gw")]
    index.update(me, r)
    assert index.of_gateway(("infra", "gw2")) == set()
    index.update(me, None)
    assert index.of_gateway(("shop", "gw")) == set() and index.of_service(("shop", "svc")) == set()


class FakeDiscovery:
    def __init__(self, served: dict[str, set[str]]) -> None:
        self.served = served
        self.asked: list[str] = []

    async def discover(self, group_version: str) -> set[str] | None:
        self.asked.append(group_version)
        return self.served.get(group_version)


def served(kube: FakeDiscovery, setting: str) -> tuple:
    settings = OperatorSettings(gateway_api=setting, lease_namespace=NS)
    return asyncio.run(discovery.served(kube, settings))  # type: ignore[arg-type]


def test_discovery_turns_the_feature_on_off_or_refuses_to_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lbaas.gateway.discovery")
    everything = FakeDiscovery(
        {
            "gateway.networking.k8s.io/v1": {
                "gatewayclasses",
                "gateways",
                "tcproutes",
                "tlsroutes",
                "udproutes",
                "httproutes",
            },
            "gateway.networking.k8s.io/v1beta1": {"referencegrants"},
        }
    )
    assert served(everything, "auto") == GATEWAY_KINDS
    assert served(everything, "false") == () and not everything.asked[2:]
    older = FakeDiscovery({"gateway.networking.k8s.io/v1": {"gatewayclasses", "gateways"}})
    assert served(older, "auto") == (GATEWAY_KINDS[0], GATEWAYS)
    assert "without HTTPRoute, TCPRoute, TLSRoute, UDPRoute, ReferenceGrant" in caplog.text
    assert TCP_ROUTES not in served(older, "true") and REFERENCE_GRANTS not in served(older, "true")
    caplog.clear()
    none = FakeDiscovery({})
    assert served(none, "auto") == ()
    (record,) = [r for r in caplog.records if r.name == "lbaas.gateway.discovery"]
    assert "Gateway API off" in record.getMessage(), "one log line"
    with pytest.raises(discovery.GatewayAPIMissing, match="LBAAS_GATEWAY_API=true"):
        served(none, "true")


def test_a_certificate_the_agent_cannot_serve_is_an_invalid_certificate_ref() -> None:
    gw = gateway(
        "gw",
        "shop",
        listener(
            "https",
            443,
            "HTTPS",
            tls={
                "mode": "Terminate",
                "certificateRefs": [{"group": "", "kind": "Secret", "name": "x"}],
            },
        ),
    )
    vips = {
        "gw-443": vip("gw-443", "Error", "CertificateInvalid", message="Secret shop/x: not found")
    }
    status = gateway_status(
        gw, accepted=OK, verdicts=verdicts(gw, KINDS), vips=vips, attached={}, placement=HERE
    )
    (entry,) = status["listeners"]
    got = conditions(entry["conditions"])
    assert got["ResolvedRefs"] == ("False", "InvalidCertificateRef")
    assert got["Programmed"] == ("False", "Invalid")
    assert "not found" in next(
        c["message"] for c in entry["conditions"] if c["type"] == "ResolvedRefs"
    )
