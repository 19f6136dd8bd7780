"""HTTPRoutes as L7Policies and Pools: precedence, host names, filters, dropped rules (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from gwkit import DictWorld, backend, endpoint_slice, gateway, listener, parent, route, service

from lbaas.api.l7policy import L7PolicySpec
from lbaas.gateway.attach import all_rules_dropped, bind, partially_invalid
from lbaas.gateway.httproutes import effective_hostnames, plan
from lbaas.gateway.httprules import rule_problems
from lbaas.gateway.listeners import verdicts

TCP = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}


def world() -> DictWorld:
    return DictWorld().add(
        service("web", "shop", TCP),
        endpoint_slice("web", "shop", ["10.1.0.1"], 8080),
        service("api", "shop", TCP),
        endpoint_slice("api", "shop", ["10.1.0.2", "10.1.0.3"], 8080),
    )


def http(name: str, rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    r = route("HTTPRoute", name, "shop", [parent("gw")], [], **spec)
    r["spec"]["rules"] = rules
    return r


def rule(
    *backends: dict[str, Any],
    matches: list[dict[str, Any]] | None = None,
    filters: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"backendRefs": list(backends), **extra}
    if matches is not None:
        body["matches"] = matches
    if filters is not None:
        body["filters"] = filters
    return body


def path(value: str, type_: str = "PathPrefix") -> dict[str, Any]:
    return {"path": {"type": type_, "value": value}}


def planned(gw: dict[str, Any], *routes: dict[str, Any]) -> Any:
    w = world()
    v = verdicts(gw, w.route_kinds)
    b = bind(gw, v, list(routes), w)
    vip = next(x.vip for x in v if x.vip)
    return plan(vip, "shop", b.on_vip.get(vip, []), w)


GW = gateway("gw", "shop", listener("web", 80, "HTTP"))


def ordered(policies: dict[str, dict[str, Any]]) -> list[str]:
    return [n for n, _ in sorted(policies.items(), key=lambda kv: kv[1]["priority"])]


def test_policies_follow_the_gateway_api_precedence_across_routes() -> None:
    older = http(
        "older",
        [
            rule(backend("web", 80), matches=[path("/"), path("/exact", "Exact")]),
            rule(
                backend("api", 80),
                matches=[
                    {**path("/api"), "headers": [{"name": "x-v", "value": "2"}]},
                    path("/api"),
                    {**path("/api"), "method": "POST"},
                ],
            ),
        ],
    )
    newer = http(
        "newer",
        [rule(backend("api", 80), matches=[path("/api/v1"), path("/")])],
        hostnames=["shop.example.com"],
    )
    made = planned(GW, older, newer)
    assert ordered(made.policies) == [
        "gw-80-newer-l0-r0-m0",  # an exact host name comes first, then the longer prefix
        "gw-80-newer-l0-r0-m1",
        "gw-80-older-l0-r0-m1",  # Exact
        "gw-80-older-l0-r1-m2",  # /api with a method
        "gw-80-older-l0-r1-m0",  # /api with a header
        "gw-80-older-l0-r1-m1",  # /api
        "gw-80-older-l0-r0-m0",  # /
        "gw-80-not-found",
    ]
    priorities = [made.policies[n]["priority"] for n in ordered(made.policies)]
    assert priorities == sorted(set(priorities)), "distinct: never a Conflict"
    for spec in made.policies.values():
        L7PolicySpec.model_validate(spec)  # every one valid for the API
    assert made.policies["gw-80-not-found"]["action"] == {
        "type": "Reject",
        "reject": {"statusCode": 404},
    }
    assert made.policies["gw-80-newer-l0-r0-m0"]["match"] == {
        "path": {"type": "PathPrefix", "value": "/api/v1"},
        "hostnames": ["shop.example.com"],
    }
    assert sorted(made.pools) == ["gw-80-api-80", "gw-80-web-80"], "one Pool per Service port"


def test_weights_filters_and_answers_without_a_backend() -> None:
    r = http(
        "r",
        [
            rule(
                backend("web", 80, weight=80),
                backend("api", 80, weight=20),
                filters=[
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [{"name": "x-a", "value": "1"}],
                            "remove": ["x-b"],
                        },
                    },
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"add": [{"name": "x-c", "value": "3"}]},
                    },
                ],
            ),
            rule(
                matches=[path("/old")],
                filters=[
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {
                            "scheme": "https",
                            "statusCode": 301,
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
                        },
                    }
                ],
            ),
            rule(backend("missing", 80), matches=[path("/gone")]),
            rule(backend("web", 80, weight=0), matches=[path("/none")]),
        ],
    )
    policies = planned(GW, r).policies
    split = policies["gw-80-r-l0-r0-m0"]
    assert split["action"] == {
        "type": "Forward",
        "pools": [
            {"poolRef": "gw-80-web-80", "weight": 80},
            {"poolRef": "gw-80-api-80", "weight": 20},
        ],
    }
    assert split["requestHeaders"] == {"set": [{"name": "x-a", "value": "1"}], "remove": ["x-b"]}
    assert split["responseHeaders"] == {"add": [{"name": "x-c", "value": "3"}]}
    assert policies["gw-80-r-l0-r1-m0"]["action"] == {
        "type": "Redirect",
        "redirect": {"scheme": "https", "statusCode": 301, "path": {"replacePrefixMatch": "/new"}},
    }
    for name in ("gw-80-r-l0-r2-m0", "gw-80-r-l0-r3-m0"):  # no usable backend: 500
        assert policies[name]["action"] == {"type": "Reject", "reject": {"statusCode": 500}}
    for spec in policies.values():
        L7PolicySpec.model_validate(spec)


def test_rules_that_cannot_be_served_are_dropped_and_said() -> None:
    r = http(
        "r",
        [
            rule(backend("web", 80)),
            rule(
                backend("web", 80),
                filters=[{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}],
            ),
            rule(backend("web", 80), timeouts={"request": "10s"}),
            rule(backend("web", 80), matches=[{"headers": [{"name": "x", "value": "v" * 2000}]}]),
            rule({**backend("web", 80), "filters": [{"type": "RequestHeaderModifier"}]}),
        ],
    )
    problems = rule_problems(r)
    assert sorted(problems) == [1, 2, 3, 4]
    assert "URLRewrite" in problems[1] and "timeouts" in problems[2]
    assert "1024" in problems[3] and "backendRef" in problems[4]
    assert [n for n in planned(GW, r).policies] == ["gw-80-r-l0-r0-m0", "gw-80-not-found"]
    cond = partially_invalid(r)
    assert cond is not None and cond.message.startswith("Dropped Rule")
    assert all_rules_dropped(r) is None
    only_bad = http("bad", [r["spec"]["rules"][1]])
    assert partially_invalid(only_bad) is None, "fully invalid is not partially invalid"
    assert "no rule can be served" in (all_rules_dropped(only_bad) or "")
    b = bind(GW, verdicts(GW, world().route_kinds), [only_bad], world())
    ref = next(iter(b.attachments))
    (attachment,) = b.attachments[ref]
    assert b.accepted(ref, attachment).reason == "UnsupportedValue"
    assert b.attached.get("web", 0) == 0


@pytest.mark.parametrize(
    ("listener_host", "route_hosts", "effective"),
    [
        (None, [], [None]),
        (None, ["a.example.com"], ["a.example.com"]),
        ("*.example.com", [], ["*.example.com"]),
        ("*.example.com", ["a.example.com", "b.other.org"], ["a.example.com"]),
        ("a.example.com", ["*.example.com"], ["a.example.com"]),
        ("*.example.com", ["*.a.example.com"], ["*.a.example.com"]),
    ],
)
def test_effective_hostnames(
    listener_host: str | None, route_hosts: list[str], effective: list[str | None]
) -> None:
    assert effective_hostnames(listener_host, route_hosts) == effective


def test_listeners_sharing_a_port_keep_their_host_names() -> None:
    gw = gateway(
        "gw",
        "shop",
        listener("a", 80, "HTTP", hostname="a.example.com"),
        listener("b", 80, "HTTP", hostname="*.example.com"),
    )
    r = http("r", [rule(backend("web", 80))])
    made = planned(gw, r)
    hosts = {n: p.get("match", {}).get("hostnames") for n, p in made.policies.items()}
    assert hosts == {
        "gw-80-r-l0-r0-m0": ["a.example.com"],
        "gw-80-r-l1-r0-m0": ["*.example.com"],
        "gw-80-not-found": None,
    }
    assert ordered(made.policies)[0] == "gw-80-r-l0-r0-m0", "the exact host first"


def test_a_route_that_would_make_too_many_policies_is_refused_whole() -> None:
    many = [{"path": {"type": "PathPrefix", "value": f"/p{i}"}} for i in range(64)]
    r = http(
        "big",
        [rule(backend("web", 80), matches=many) for _ in range(4)],
        hostnames=["a.example.com", "b.example.com"],
    )
    problems = rule_problems(r)
    assert sorted(problems) == [0, 1, 2, 3] and "512 L7Policies" in problems[0]
    assert "no rule can be served" in (all_rules_dropped(r) or "")
    assert list(planned(GW, r).policies) == ["gw-80-not-found"]
    fits = http("fits", [rule(backend("web", 80), matches=many)])
    assert rule_problems(fits) == {}
