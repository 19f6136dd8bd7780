"""L7 policies through the data plane (issue 20): each declared L7 feature routes, redirects,
rejects, changes headers or splits as the driver data model says.

Every tree is an HTTP load balancer with pools ``a`` (the default) and ``b``, one member each
(``c`` too for priority), and the policies a test gives, in evaluation order. A request a
policy takes is answered by its pool's member; one it does not by ``a``'s.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lbaas.drivers.model import (
    Action,
    ActionType,
    Header,
    HeaderChanges,
    L7Policy,
    LoadBalancer,
    Match,
    PathMatch,
    PathMatchType,
    Protocol,
    Redirect,
    ValueMatch,
    ValueMatchType,
    WeightedPool,
)
from lbaas_conformance.backends import Backends, Member
from lbaas_conformance.client import Answer, get
from lbaas_conformance.features import TRAFFIC, feature
from lbaas_conformance.kit import Kit
from lbaas_conformance.traffic import serve, where

PREFIX, EXACT, REGEX = PathMatchType.PREFIX, PathMatchType.EXACT, PathMatchType.REGEX


def to(*pools: str | tuple[str, int]) -> Action:
    weighted = [WeightedPool(p) if isinstance(p, str) else WeightedPool(*p) for p in pools]
    return Action(ActionType.FORWARD, pools=tuple(weighted))


def policy(name: str, priority: int, action: Action, **match: Any) -> L7Policy:
    return L7Policy(name, priority, Match(**match), action)


def routed(
    kit: Kit, backends: Backends, *policies: L7Policy, pools: str = "ab"
) -> tuple[LoadBalancer, dict[str, Member]]:
    """Serve the pools (one member each, named after the pool) and ``policies``."""
    members = {name: backends.http(1, f"l7{name}")[0] for name in pools}
    built = tuple(kit.trees.pool([m], name=name) for name, m in members.items())
    ordered = tuple(sorted(policies, key=lambda p: (p.priority, p.name)))
    lb = serve(kit, [], proto=Protocol.HTTP, pools=built, listener={"policies": ordered})
    return lb, members


def ask(lb: LoadBalancer, path: str = "/", **headers: str) -> Answer:
    return get(*where(lb), path, headers=headers)


def by(lb: LoadBalancer, members: dict[str, Member], path: str = "/", **headers: str) -> str:
    """Which pool answered (its member's name mapped back), or ``!<status>``."""
    answer = ask(lb, path, **headers)
    if answer.status != 200:
        return f"!{answer.status}"
    return next((pool for pool, m in members.items() if m.name == answer.body), answer.body)


@feature("l7.host", layer=TRAFFIC)
def test_host_names_route_to_their_pool(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit, backends, policy("h", 1, to("b"), hostnames=("shop.example.com", "*.example.org"))
    )
    assert by(lb, members, Host="shop.example.com") == "b"
    assert by(lb, members, Host="SHOP.example.com:8080") == "b", "case and port are ignored"
    assert by(lb, members, Host="x.example.org") == "b"
    assert by(lb, members, Host="example.org") == "a", "*. needs a label before it"
    assert by(lb, members, Host="other.example.com") == "a"


@feature("l7.path", layer=TRAFFIC)
def test_paths_route_exact_and_by_element_prefix(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit,
        backends,
        policy("prefix", 1, to("b"), path=PathMatch(PREFIX, "/api")),
        policy("exact", 2, to("c"), path=PathMatch(EXACT, "/only")),
        pools="abc",
    )
    assert [by(lb, members, p) for p in ("/api", "/api/", "/api/v1")] == ["b", "b", "b"]
    assert by(lb, members, "/apix") == "a", "PathPrefix matches whole path elements"
    assert by(lb, members, "/only") == "c" and by(lb, members, "/only/x") == "a"


@feature("l7.header", layer=TRAFFIC)
def test_a_header_routes(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit, backends, policy("h", 1, to("b"), headers=(ValueMatch("X-Canary", "yes"),))
    )
    assert by(lb, members, **{"X-Canary": "yes"}) == "b"
    assert by(lb, members, **{"x-canary": "yes"}) == "b", "header names are case-insensitive"
    assert by(lb, members, **{"X-Canary": "no"}) == "a" and by(lb, members) == "a"


@feature("l7.method", layer=TRAFFIC)
def test_the_method_routes(kit: Kit, backends: Backends) -> None:
    lb, members = routed(kit, backends, policy("get", 1, to("b"), method="GET"))
    assert by(lb, members) == "b"
    lb, members = routed(kit, backends, policy("delete", 1, to("b"), method="DELETE"))
    assert by(lb, members) == "a", "a GET is not a DELETE"


@feature("l7.query", layer=TRAFFIC)
def test_a_query_parameter_routes(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit, backends, policy("q", 1, to("b"), query_params=(ValueMatch("v", "2"),))
    )
    assert by(lb, members, "/?v=2") == "b" and by(lb, members, "/?a=1&v=2") == "b"
    assert by(lb, members, "/?v=22") == "a" and by(lb, members, "/") == "a"


@feature("l7.regex", layer=TRAFFIC)
def test_regular_expressions_match_the_whole_value(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit,
        backends,
        policy("path", 1, to("b"), path=PathMatch(REGEX, "/v[0-9]+/.*")),
        policy("hdr", 2, to("c"), headers=(ValueMatch("X-V", "a+", ValueMatchType.REGEX),)),
        pools="abc",
    )
    assert by(lb, members, "/v2/items") == "b" and by(lb, members, "/x/v2/items") == "a"
    assert by(lb, members, **{"X-V": "aaa"}) == "c"
    assert by(lb, members, **{"X-V": "aab"}) == "a", "the whole value must match"


@feature("l7.redirect", layer=TRAFFIC)
def test_a_redirect_names_its_target(kit: Kit, backends: Backends) -> None:
    https = Action(ActionType.REDIRECT, redirect=Redirect(scheme="https", status_code=301))
    moved = Action(
        ActionType.REDIRECT, redirect=Redirect(replace_prefix_match="/new", status_code=308)
    )
    lb, _ = routed(
        kit,
        backends,
        policy("https", 1, https, hostnames=("secure.example.com",)),
        policy("moved", 2, moved, path=PathMatch(PREFIX, "/old")),
    )
    answer = ask(lb, "/a/b?c=d", Host="secure.example.com")
    assert (answer.status, answer.headers.get("location")) == (
        301,
        "https://secure.example.com/a/b?c=d",
    )
    answer = ask(lb, "/old/x", Host="h.example.com")
    port = lb.listeners[0].port
    assert (answer.status, answer.headers.get("location")) == (
        308,
        f"http://h.example.com:{port}/new/x",
    )


@feature("l7.reject", layer=TRAFFIC)
def test_a_reject_answers_its_status(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit,
        backends,
        policy("deny", 1, Action(ActionType.REJECT), path=PathMatch(PREFIX, "/admin")),
        policy(
            "busy", 2, Action(ActionType.REJECT, status_code=503), path=PathMatch(EXACT, "/busy")
        ),
    )
    assert ask(lb, "/admin/x").status == 403 and ask(lb, "/busy").status == 503
    assert by(lb, members, "/administrator") == "a"


@feature("l7.header-modifier", layer=TRAFFIC)
def test_headers_are_changed_both_ways(kit: Kit, backends: Backends) -> None:
    value = "a \"quoted\" 'value' 100% $HOME #x"
    change = L7Policy(
        "hdr",
        1,
        Match(path=PathMatch(PREFIX, "/h")),
        to("b"),
        request_headers=HeaderChanges(set=(Header("X-Set", value),), add=(Header("X-Add", "1"),),
                                      remove=("X-Drop",)),
        response_headers=HeaderChanges(set=(Header("X-Served-By", "lb"),)),
    )  # fmt: skip
    lb, members = routed(kit, backends, change)
    answer = ask(lb, "/h", **{"X-Drop": "secret", "X-Set": "old"})
    seen = members["b"].last_headers
    assert answer.status == 200 and seen.get("x-set") == value, seen
    assert seen.get("x-add") == "1" and "x-drop" not in seen, seen
    assert answer.headers.get("x-served-by") == "lb", answer.headers
    plain = ask(lb, "/", **{"X-Drop": "kept"})
    assert members["a"].last_headers.get("x-drop") == "kept" and "x-served-by" not in plain.headers


@feature("l7.weighted-split", layer=TRAFFIC)
def test_a_weighted_split_follows_the_weights(kit: Kit, backends: Backends) -> None:
    lb, members = routed(kit, backends, policy("split", 1, to(("a", 80), ("b", 20))))
    seen = Counter(by(lb, members) for _ in range(1000))
    assert set(seen) == {"a", "b"} and abs(seen["a"] / 1000 - 0.8) <= 0.07, seen


@feature("l7.host", layer=TRAFFIC)
def test_the_first_policy_by_priority_decides(kit: Kit, backends: Backends) -> None:
    lb, members = routed(
        kit,
        backends,
        policy("wide", 1, to("b"), hostnames=("*.example.com",)),
        policy("narrow", 2, to("c"), hostnames=("a.example.com",)),
        pools="abc",
    )
    assert by(lb, members, Host="a.example.com") == "b", "priority 1 comes first"
