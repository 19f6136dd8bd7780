"""Ports of the Gateway API conformance tests (release v1.6.1, ``conformance/tests/``) of the
GATEWAY-HTTP profile's core that matter here, as pytest cases: the same objects (names kept
where they help), the same expectations, through the real operator and real HAProxy.

The upstream suite is Go and needs a full cluster; it cannot run here, and these ports are no
claim of conformance: docs/gateway-api.md lists which upstream tests are covered, which not,
and why. Each test names the upstream test it ports.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dataplane.conformance_kit import Infra, consistently, make_infra
from dataplane.hxsupport import Backends, OperatorDevice, get, haproxy_binary, net
from gwkit import backend, gateway, gateway_class, grant, listener, parent, route
from gwsupport import Gw, all_conditions, install_crds

from helpers import Api, OperatorProcess, kubectl, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]

_BLOCKS = itertools.count(0)


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    haproxy_binary()
    install_crds()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(
        log, LBAAS_GATEWAY_API="true", LBAAS_DRIVER_TIMEOUT="5", LBAAS_LEASE_DURATION="8"
    ).start()
    yield proc
    proc.stop()
    print(f"operator log: {log}")


@pytest.fixture
def gw(api: Api) -> Gw:
    return Gw(api)


@pytest.fixture
def cls(gw: Gw, namespace: str, make_hx_device: Callable[..., OperatorDevice]) -> Iterator[str]:
    name = f"conf-{namespace}"
    gw.create(gateway_class(name))
    yield name
    for item in gw.items("Gateway", namespace):
        gw.delete("Gateway", namespace, item["metadata"]["name"])
    wait_for(lambda: not gw.items("Gateway", namespace), 30, "the Gateways gone")
    gw.delete("GatewayClass", None, name)


@pytest.fixture
def infra(
    gw: Gw, namespace: str, cls: str, make_hx_device: Callable[..., OperatorDevice]
) -> Iterator[Infra]:
    device = make_hx_device(net(94, (next(_BLOCKS) % 16) * 16) + "/28")
    made = Backends(third=95)
    yield make_infra(gw, namespace, cls, device, made)
    for server in made.started:
        server.shutdown()
        server.server_close()


def http_route(
    name: str,
    namespace: str,
    rules: list[dict[str, Any]],
    parents: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    made = route("HTTPRoute", name, namespace, parents or [parent("same-namespace")], [], **spec)
    made["spec"]["rules"] = rules
    return made


def to(version: str, *matches: dict[str, Any], **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [backend(f"infra-backend-{version}", 8080)], **extra}
    if matches:
        rule["matches"] = list(matches)
    return rule


def prefix(value: str, **extra: Any) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": value}, **extra}


def exact(value: str) -> dict[str, Any]:
    return {"path": {"type": "Exact", "value": value}}


def header(**pairs: str) -> dict[str, Any]:
    return {"headers": [{"name": k, "value": v} for k, v in pairs.items()]}


V1, V2, V3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"


def route_condition(
    gw: Gw,
    infra: Infra,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    gateway: str = "same-namespace",
) -> dict:
    return gw.wait_condition(
        "HTTPRoute", infra.namespace, name, type_, status, reason, parent=gateway
    )


# ---- routing -----------------------------------------------------------------------------------


def test_httproute_simple_same_namespace(gw: Gw, infra: Infra) -> None:
    """HTTPRouteSimpleSameNamespace."""
    infra.gateway()
    gw.create(http_route("gateway-conformance-infra-test", infra.namespace, [to("v1")]))
    route_condition(gw, infra, "gateway-conformance-infra-test", "Accepted", "True", "Accepted")
    route_condition(gw, infra, "gateway-conformance-infra-test", "ResolvedRefs", "True")
    infra.expect({("/", "example.com"): V1})
    assert gw.listener(infra.namespace, "same-namespace", "http")["attachedRoutes"] == 1


def test_httproute_matching(gw: Gw, infra: Infra) -> None:
    """HTTPRouteMatching: path prefixes (element-wise) and headers, across two rules."""
    infra.gateway()
    gw.create(
        http_route(
            "matching",
            infra.namespace,
            [
                to("v1", prefix("/"), header(version="one")),
                to("v2", prefix("/v2"), header(version="two")),
            ],
        )
    )
    infra.expect(
        [
            ({"path": "/"}, V1),
            ({"path": "/example"}, V1),
            ({"path": "/", "version": "one"}, V1),
            ({"path": "/v2"}, V2),
            ({"path": "/v2/example"}, V2),
            ({"path": "/", "version": "two"}, V2),
            ({"path": "/v2/"}, V2),
            ({"path": "/v2example"}, V1),
            ({"path": "/foo/v2/example"}, V1),
        ]
    )


def test_httproute_exact_path_matching(gw: Gw, infra: Infra) -> None:
    """HTTPRouteExactPathMatching: what no rule takes is 404."""
    infra.gateway()
    gw.create(
        http_route(
            "exact-matching", infra.namespace, [to("v1", exact("/one")), to("v2", exact("/two"))]
        )
    )
    infra.expect(
        [
            ({"path": "/one"}, V1),
            ({"path": "/two"}, V2),
            ({"path": "/"}, "404"),
            ({"path": "/one/example"}, "404"),
            ({"path": "/two/"}, "404"),
            ({"path": "/Two"}, "404"),
        ]
    )


def test_httproute_path_match_order(gw: Gw, infra: Infra) -> None:
    """HTTPRoutePathMatchOrder: Exact before PathPrefix, longer prefixes first."""
    infra.gateway()
    gw.create(
        http_route(
            "path-matching-order",
            infra.namespace,
            [
                to("v1", exact("/match")),
                to("v2", exact("/match/exact")),
                to("v3", exact("/match/exact/one")),
                to("v3", prefix("/match/")),
                to("v1", prefix("/match/prefix/")),
                to("v2", prefix("/match/prefix/one")),
            ],
        )
    )
    infra.expect(
        [
            ({"path": "/match/exact/one"}, V3),
            ({"path": "/match/exact"}, V2),
            ({"path": "/match"}, V1),
            ({"path": "/match/prefix/one/any"}, V2),
            ({"path": "/match/prefix/any"}, V1),
            ({"path": "/match/any"}, V3),
        ]
    )


def test_httproute_matching_across_routes(gw: Gw, infra: Infra) -> None:
    """HTTPRouteMatchingAcrossRoutes: precedence over the matches of two routes."""
    infra.gateway()
    gw.create(
        http_route(
            "matching-part1",
            infra.namespace,
            [to("v1", prefix("/"), header(version="one"))],
            hostnames=["example.com", "example.net"],
        )
    )
    gw.create(
        http_route(
            "matching-part2",
            infra.namespace,
            [to("v2", prefix("/v2"), header(version="two"))],
            hostnames=["example.com"],
        )
    )
    infra.expect(
        [
            ({"host": "example.com", "path": "/"}, V1),
            ({"host": "example.com", "path": "/example"}, V1),
            ({"host": "example.net", "path": "/example"}, V1),
            ({"host": "example.com", "path": "/example", "version": "one"}, V1),
            ({"host": "example.com", "path": "/v2"}, V2),
            ({"host": "example.net", "path": "/v2"}, V1),
            ({"host": "example.com", "path": "/v2/example"}, V2),
            ({"host": "example.com", "path": "/", "version": "two"}, V2),
        ]
    )


def test_httproute_header_matching(gw: Gw, infra: Infra) -> None:
    """HTTPRouteHeaderMatching: all headers of a match, any match of a rule."""
    infra.gateway()
    gw.create(
        http_route(
            "header-matching",
            infra.namespace,
            [
                to("v1", header(version="one")),
                to("v2", header(version="two")),
                to("v1", header(version="two", color="orange")),
                to("v1", header(color="blue"), header(color="green")),
                to("v2", header(color="red"), header(color="yellow")),
            ],
        )
    )
    infra.expect(
        [
            ({"version": "one"}, V1),
            ({"version": "two"}, V2),
            ({"version": "two", "color": "orange"}, V1),
            ({"version": "two", "color": "blue"}, V2),
            ({"color": "orange"}, "404"),
            ({"some-other-header": "one"}, "404"),
            ({"color": "blue"}, V1),
            ({"color": "green"}, V1),
            ({"color": "red"}, V2),
            ({"color": "yellow"}, V2),
            ({"color": "purple"}, "404"),
        ]
    )


def test_httproute_hostname_intersection(gw: Gw, infra: Infra) -> None:
    """HTTPRouteHostnameIntersection (its first Gateway): listener and route host names."""
    p = infra.port
    infra.gateway(
        "httproute-hostname-intersection",
        listener("listener-1", p, "HTTP", hostname="very.specific.com"),
        listener("listener-2", p, "HTTP", hostname="*.wildcard.io"),
        listener("listener-3", p, "HTTP", hostname="*.anotherwildcard.io"),
    )
    parents = [parent("httproute-hostname-intersection", namespace=infra.namespace)]
    routes = {
        "s1": (["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"], "v1"),
        "s2": (
            [
                "non.matching.com",
                "wildcard.io",
                "foo.wildcard.io",
                "bar.wildcard.io",
                "foo.bar.wildcard.io",
            ],
            "v2",
        ),
        "s3": (["non.matching.com", "*.specific.com"], "v3"),
        "s4": (["*.anotherwildcard.io"], "v1"),
        "s5": (["specific.but.wrong.com", "wildcard.io"], "v2"),
    }
    for path, (hosts, version) in routes.items():
        gw.create(
            http_route(
                f"route-{path}",
                infra.namespace,
                [to(version, prefix(f"/{path}"))],
                parents=parents,
                hostnames=hosts,
            )
        )
    gw.wait_condition(
        "HTTPRoute",
        infra.namespace,
        "route-s5",
        "Accepted",
        "False",
        "NoMatchingListenerHostname",
        parent="httproute-hostname-intersection",
    )
    infra.expect(
        [
            ({"host": "very.specific.com", "path": "/s1"}, V1),
            ({"host": "very.specific.com:1234", "path": "/s1"}, V1),
            ({"host": "non.matching.com", "path": "/s1"}, "404"),
            ({"host": "foo.nonmatchingwildcard.io", "path": "/s1"}, "404"),
            ({"host": "foo.wildcard.io", "path": "/s1"}, "404"),
            ({"host": "foo.wildcard.io", "path": "/s2"}, V2),
            ({"host": "foo.bar.wildcard.io", "path": "/s2"}, V2),
            ({"host": "wildcard.io", "path": "/s2"}, "404"),
            ({"host": "very.specific.com", "path": "/s2"}, "404"),
            ({"host": "very.specific.com", "path": "/s3"}, V3),
            ({"host": "foo.specific.com", "path": "/s3"}, "404"),
            ({"host": "foo.anotherwildcard.io", "path": "/s4"}, V1),
            ({"host": "foo.bar.anotherwildcard.io", "path": "/s4"}, V1),
            ({"host": "anotherwildcard.io", "path": "/s4"}, "404"),
            ({"host": "specific.but.wrong.com", "path": "/s5"}, "404"),
        ]
    )


def test_httproute_weight(gw: Gw, infra: Infra) -> None:
    """HTTPRouteWeight: 70/30/0 between three Services (5 % off at most, as upstream)."""
    infra.gateway()
    rule = {
        "backendRefs": [
            backend(V1, 8080, weight=70),
            backend(V2, 8080, weight=30),
            backend(V3, 8080, weight=0),
        ]
    }
    gw.create(http_route("weighted-backends", infra.namespace, [rule]))
    wait_for(lambda: infra.ask() in (V1, V2), 20, "served")
    seen = [infra.ask() for _ in range(2000)]  # random draws: 5 % is 5 sigma at 2,000
    shares = {v: seen.count(v) / len(seen) for v in (V1, V2, V3)}
    assert abs(shares[V1] - 0.7) <= 0.05 and abs(shares[V2] - 0.3) <= 0.05, shares
    assert shares[V3] == 0, shares


def test_httproute_redirect_host_and_status(gw: Gw, infra: Infra) -> None:
    """HTTPRouteRedirectHostAndStatus."""
    infra.gateway()

    def redirect(match: str, **target: Any) -> dict[str, Any]:
        return {
            "matches": [prefix(match)],
            "filters": [{"type": "RequestRedirect", "requestRedirect": target}],
        }

    gw.create(
        http_route(
            "redirect-host-and-status",
            infra.namespace,
            [
                redirect("/hostname-redirect", hostname="example.org"),
                redirect("/host-and-status", hostname="example.org", statusCode=301),
            ],
        )
    )

    def answer(path: str) -> tuple[int, str]:
        status, _, headers = get(infra.address, infra.port, path, headers={"Host": "example.com"})
        return status, headers.get("location", "")

    # Upstream's listener is on port 80, which the Location leaves out; this one is not on 80,
    # and the Gateway API says a redirect without scheme or port keeps the listener's port.
    # (The route's two policies may reach the device one after the other: each is awaited.)
    target = f"http://example.org:{infra.port}"
    for path, code in (("/hostname-redirect", 302), ("/host-and-status", 301)):
        want = (code, f"{target}{path}")
        consistently(lambda p=path: str(answer(p)), str(want), 20, f"redirect of {path}")


# ---- invalid references: statuses and the answers the API prescribes --------------------------


def test_httproute_invalid_backends(gw: Gw, infra: Infra) -> None:
    """HTTPRouteInvalidNonExistentBackendRef, HTTPRouteInvalidBackendRefUnknownKind,
    HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteNoBackendRefs: the route is accepted,
    ResolvedRefs says why, and requests get 500."""
    infra.gateway()
    cases = {
        "nonexistent": ("BackendNotFound", [backend("nonexistent", 8080)]),
        "unknown-kind": ("InvalidKind", [backend(V1, 8080, group="unknown.io", kind="Unknown")]),
        "cross-namespace": (
            "RefNotPermitted",
            [backend("web-backend", 8080, namespace="gateway-conformance-web-backend")],
        ),
    }
    for path, (_, refs) in cases.items():
        gw.create(
            http_route(
                path, infra.namespace, [{"matches": [prefix(f"/{path}")], "backendRefs": refs}]
            )
        )
    gw.create(http_route("no-backends", infra.namespace, [{"matches": [prefix("/none")]}]))
    for path, (reason, _) in cases.items():
        route_condition(gw, infra, path, "ResolvedRefs", "False", reason)
        route_condition(gw, infra, path, "Accepted", "True")
    route_condition(gw, infra, "no-backends", "ResolvedRefs", "True")
    infra.expect([({"path": f"/{p}"}, "500") for p in [*cases, "none"]])


def test_httproute_reference_grant_and_partially_invalid_via_invalid_grant(
    gw: Gw, infra: Infra, pods_in: Callable[[str], Any]
) -> None:
    """HTTPRouteReferenceGrant and HTTPRoutePartiallyInvalidViaInvalidReferenceGrant: a grant
    naming app-backend-v1 only; the rule to app-backend-v2 answers 500, its sibling serves."""
    other = pods_in("gateway-conformance-app-backend")
    infra.gateway()
    gw.create(
        grant(
            other.namespace,
            from_namespace=infra.namespace,
            from_kind="HTTPRoute",
            to_name="app-backend-v1",
            name="invalid-reference-grant",
        )
    )
    gw.create(
        http_route(
            "invalid-reference-grant",
            infra.namespace,
            [
                {
                    "matches": [prefix("/v2")],
                    "backendRefs": [backend("app-backend-v2", 8080, namespace=other.namespace)],
                },
                {"backendRefs": [backend("app-backend-v1", 8080, namespace=other.namespace)]},
            ],
        )
    )
    route_condition(
        gw, infra, "invalid-reference-grant", "ResolvedRefs", "False", "RefNotPermitted"
    )
    infra.expect([({"path": "/v2"}, "500"), ({"path": "/"}, "app-backend-v1")])


@pytest.fixture
def pods_in(gw: Gw, infra: Infra) -> Iterator[Callable[[str], Any]]:
    """Backends ``app-backend-v1/v2`` as Services of another namespace (made on demand)."""
    made = Backends(third=96)
    namespaces: list[str] = []

    class Other:
        def __init__(self, namespace: str) -> None:
            self.namespace = namespace

    def make(prefix_: str) -> Other:
        namespace = f"{prefix_[-20:]}-{infra.namespace[-6:]}"
        kubectl("create", "namespace", namespace)
        namespaces.append(namespace)
        for version, server in zip(("v1", "v2"), made.http(2), strict=True):
            server.name = f"app-backend-{version}"
            infra.serve(server.name, server, namespace)
        return Other(namespace)

    yield make
    for server in made.started:
        server.shutdown()
        server.server_close()
    for namespace in namespaces:
        kubectl("delete", "namespace", namespace, "--wait=false")


def test_httproute_parent_refs_that_do_not_attach(gw: Gw, infra: Infra) -> None:
    """HTTPRouteInvalidParentRefNotMatchingSectionName, HTTPRouteDisallowedKind,
    HTTPRouteInvalidCrossNamespaceParentRef."""
    p = infra.port
    infra.gateway(
        "same-namespace",
        listener("http", p, "HTTP"),
        listener(
            "tls-only",
            p + 1,
            "HTTP",
            allowedRoutes={"kinds": [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]},
        ),
    )
    gw.create(
        http_route(
            "section-name",
            infra.namespace,
            [to("v1")],
            parents=[parent("same-namespace", sectionName="nonexistent")],
        )
    )
    gw.create(
        http_route(
            "disallowed-kind",
            infra.namespace,
            [to("v1")],
            parents=[parent("same-namespace", sectionName="tls-only")],
        )
    )
    route_condition(gw, infra, "section-name", "Accepted", "False", "NoMatchingParent")
    route_condition(gw, infra, "disallowed-kind", "Accepted", "False", "NotAllowedByListeners")
    other = f"web-backend-{infra.namespace[-6:]}"
    kubectl("create", "namespace", other)
    try:
        gw.create(
            http_route(
                "invalid-cross-namespace-parent-ref",
                other,
                [to("v1")],
                parents=[parent("same-namespace", namespace=infra.namespace)],
            )
        )
        gw.wait_condition(
            "HTTPRoute",
            other,
            "invalid-cross-namespace-parent-ref",
            "Accepted",
            "False",
            "NotAllowedByListeners",
            parent="same-namespace",
        )
    finally:
        kubectl("delete", "namespace", other, "--wait=false")
    assert gw.listener(infra.namespace, "same-namespace", "http")["attachedRoutes"] == 0


# ---- Gateways and their listeners ------------------------------------------------------------


def latest(obj: dict[str, Any]) -> bool:
    """GatewayMustHaveLatestConditions: every condition observes the current generation."""
    generation = obj["metadata"]["generation"]
    conditions = list(all_conditions(obj))
    return bool(conditions) and all(c.get("observedGeneration") == generation for c in conditions)


def test_observed_generation_bumps(gw: Gw, infra: Infra) -> None:
    """GatewayObservedGenerationBump, GatewayClassObservedGenerationBump,
    HTTPRouteObservedGenerationBump."""
    infra.gateway()
    gw.create(http_route("observed-generation-bump", infra.namespace, [to("v1")]))
    route_condition(gw, infra, "observed-generation-bump", "Accepted", "True")
    gw.patch(
        "Gateway",
        infra.namespace,
        "same-namespace",
        {
            "spec": {
                "listeners": [
                    listener("http", infra.port, "HTTP"),
                    listener(
                        "alternate",
                        infra.port,
                        "HTTP",
                        hostname="foo.com",
                        allowedRoutes={"namespaces": {"from": "All"}},
                    ),
                ]
            }
        },
    )
    gw.patch("GatewayClass", None, infra.cls, {"spec": {"description": "new"}})
    gw.patch(
        "HTTPRoute", infra.namespace, "observed-generation-bump", {"spec": {"rules": [to("v2")]}}
    )
    for kind, namespace, name in (
        ("Gateway", infra.namespace, "same-namespace"),
        ("GatewayClass", None, infra.cls),
        ("HTTPRoute", infra.namespace, "observed-generation-bump"),
    ):
        found = wait_for(
            lambda k=kind, ns=namespace, n=name: (
                (obj := gw.get(k, ns, n)) and obj["metadata"]["generation"] == 2 and latest(obj)
            ),
            20,
            f"{kind} {name} at generation 2",
        )
        assert found
    infra.expect({("/", "example.com"): V2, ("/", "foo.com"): V2})


def test_gateway_listener_statuses(gw: Gw, infra: Infra) -> None:
    """GatewayListenerUnsupportedProtocol, GatewayInvalidRouteKind, GatewayInvalidParametersRef,
    GatewayWithAttachedRoutes (its HTTP parts)."""
    p, ns = infra.port, infra.namespace
    gw.create(
        _gateway(
            "gateway-only-unsupported-protocols",
            ns,
            infra.cls,
            listener("invalid", p + 2, "INVALID"),
        )
    )
    gw.wait_condition(
        "Gateway",
        ns,
        "gateway-only-unsupported-protocols",
        "Accepted",
        "False",
        "ListenersNotValid",
    )
    gw.wait_condition(
        "Gateway",
        ns,
        "gateway-only-unsupported-protocols",
        "Accepted",
        "False",
        "UnsupportedProtocol",
        listener="invalid",
    )
    gw.create(
        _gateway(
            "gateway-only-invalid-route-kind",
            ns,
            infra.cls,
            listener(
                "http",
                p + 3,
                "HTTP",
                allowedRoutes={
                    "kinds": [{"group": "gateway.networking.k8s.io", "kind": "InvalidRoute"}]
                },
            ),
        )
    )
    cond = gw.wait_condition(
        "Gateway",
        ns,
        "gateway-only-invalid-route-kind",
        "ResolvedRefs",
        "False",
        "InvalidRouteKinds",
        listener="http",
    )
    assert (
        cond and gw.listener(ns, "gateway-only-invalid-route-kind", "http")["supportedKinds"] == []
    )
    gw.create(
        _gateway(
            "gateway-invalid-parameters-ref",
            ns,
            infra.cls,
            listener("http", p + 4, "HTTP"),
            infrastructure={"parametersRef": {"group": "", "kind": "ConfigMap", "name": "invalid"}},
        )
    )
    gw.wait_condition(
        "Gateway", ns, "gateway-invalid-parameters-ref", "Accepted", "False", "InvalidParameters"
    )

    kubectl("label", "namespace", ns, f"kubernetes.io/metadata.name={ns}", "--overwrite")
    selector = {
        "kinds": [{"kind": "HTTPRoute"}],
        "namespaces": {
            "from": "Selector",
            "selector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        },
    }
    infra.gateway(
        "gateway-with-two-attached-routes",
        listener("http", p, "HTTP", hostname="foo.example.com", allowedRoutes=selector),
    )
    two = [parent("gateway-with-two-attached-routes", namespace=ns)]
    for name in ("http-route-2", "http-route-3"):
        gw.create(http_route(name, ns, [to("v1")], parents=two))
    gw.create(
        http_route(
            "http-route-not-accepted",
            ns,
            [to("v1")],
            parents=two,
            hostnames=["not-accepted.test.com"],
        )
    )
    gw.wait_condition(
        "HTTPRoute",
        ns,
        "http-route-not-accepted",
        "Accepted",
        "False",
        "NoMatchingListenerHostname",
        parent="gateway-with-two-attached-routes",
    )
    wait_for(
        lambda: gw.listener(ns, "gateway-with-two-attached-routes", "http")["attachedRoutes"] == 2,
        20,
        "two attached routes",
    )


def _gateway(
    name: str, namespace: str, cls: str, *listeners: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    return gateway(name, namespace, *listeners, cls=cls, **spec)


# ---- HTTPS listeners --------------------------------------------------------------------------


def test_gateway_invalid_tls_configuration_and_missing_reference_grant(
    gw: Gw, infra: Infra
) -> None:
    """GatewayInvalidTLSConfiguration (a missing Secret, a wrong group, a wrong kind, a
    malformed Secret) and GatewaySecretMissingReferenceGrant: each listener's ResolvedRefs."""
    import base64

    hello = base64.b64encode(b"Hello world\n").decode()
    infra.gw.api.core.create_namespaced_secret(
        infra.namespace,
        {
            "metadata": {"name": "malformed-certificate"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": hello, "tls.key": hello},
        },
    )
    cases = {
        "gateway-certificate-nonexistent-secret": (
            {"group": "", "kind": "Secret", "name": "nonexistent-certificate"},
            "InvalidCertificateRef",
        ),
        "gateway-certificate-unsupported-group": (
            {"group": "wrong.group.company.io", "kind": "Secret", "name": "x"},
            "InvalidCertificateRef",
        ),
        "gateway-certificate-unsupported-kind": (
            {"group": "", "kind": "WrongKind", "name": "x"},
            "InvalidCertificateRef",
        ),
        "gateway-certificate-malformed-secret": (
            {"group": "", "kind": "Secret", "name": "malformed-certificate"},
            "InvalidCertificateRef",
        ),
        "gateway-secret-missing-reference-grant": (
            {
                "group": "",
                "kind": "Secret",
                "name": "certificate",
                "namespace": "gateway-conformance-web-backend",
            },
            "RefNotPermitted",
        ),
    }
    for i, (name, (ref, _)) in enumerate(cases.items()):
        tls = {"mode": "Terminate", "certificateRefs": [ref]}
        gw.create(
            _gateway(
                name,
                infra.namespace,
                infra.cls,
                listener("https", infra.port + i, "HTTPS", tls=tls),
            )
        )
    for name, (_, reason) in cases.items():
        gw.wait_condition(
            "Gateway",
            infra.namespace,
            name,
            "ResolvedRefs",
            "False",
            reason,
            listener="https",
            timeout=60,
        )
        assert gw.listener(infra.namespace, name, "https")["supportedKinds"] == [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}
        ]
