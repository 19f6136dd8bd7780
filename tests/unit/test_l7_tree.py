"""L7 policies in a VIP's tree (issue 20): which go to the device, in which order, and why not;
their translation into the driver model; what they ask of a device; what is left out when the
device cannot serve a policy."""

from __future__ import annotations

from typing import Any

import pytest

from lbaas.drivers import model
from lbaas.drivers.capabilities import FEATURES, missing, required_features, why_unsupported
from lbaas.drivers.contract import Driver
from lbaas.trees import l7, report
from lbaas.trees.translate import load_balancer
from lbaas.trees.tree import Tree, build_tree
from unit.test_tree import member, pool, snap, vip

FORWARD_A = {"type": "Forward", "pools": [{"poolRef": "a"}]}


def policy(
    name: str, priority: int = 10, created: str = "2024-01-01T00:00:00Z", **spec: Any
) -> Any:
    body = {"vipRef": "web", "priority": priority, "action": FORWARD_A, **spec}
    return snap("L7Policy", name, body, created=created)


def tree_of(
    *policies: Any,
    pools: tuple[str, ...] = ("a", "b"),
    owner: dict[str, str] | None = None,
    **vip_spec: Any,
) -> Tree:
    spec = {"protocol": "HTTP", "defaultPoolRef": pools[0] if pools else None, **vip_spec}
    spec = {k: v for k, v in spec.items() if v is not None}
    members = {p: [member(f"m-{p}", p)] for p in pools}
    owners = {**{p: "web" for p in pools}, **(owner or {})}
    tree = build_tree(vip(**spec), [pool(p) for p in pools], members, {}, None, owners.get)
    return l7.attach(tree, policies, owners.get)


def used(tree: Tree) -> list[str]:
    return [node.name for node in tree.policies]


def problem(tree: Tree, name: str) -> tuple[str | None, str]:
    obj = next(o for o in tree.objects if o.name == name and o.kind == "L7Policy")
    return obj.problem_reason, obj.problem or ""


# ---- which policies, in which order ------------------------------------------------------------


def test_policies_in_order_of_priority_then_name() -> None:
    tree = tree_of(
        policy("zeta", 5, match={"path": {"value": "/z"}}),
        policy("beta", 20, match={"path": {"value": "/b"}}),
        policy("alpha", 20, match={"path": {"value": "/a"}}),
        policy("first", 1, match={"hostnames": ["x.example.com"]}),
    )
    assert used(tree) == ["first", "zeta", "alpha", "beta"]
    lb = load_balancer(tree, "192.0.2.1")
    assert [p.name for p in lb.listeners[0].policies] == ["first", "zeta", "alpha", "beta"]
    assert [p.priority for p in lb.listeners[0].policies] == [1, 5, 20, 20]
    assert all(o.problem is None for o in tree.objects)


def test_a_deleting_policy_is_an_object_but_not_desired() -> None:
    gone = snap("L7Policy", "gone", {"vipRef": "web", "action": FORWARD_A}, deleting=True)
    tree = tree_of(gone, policy("kept"))
    assert used(tree) == ["kept"]
    assert ("L7Policy", "gone") in [(o.kind, o.name) for o in tree.objects]
    assert problem(tree, "gone") == (None, "")


def test_missing_pool_is_pool_not_found_and_the_rest_is_served() -> None:
    bad = policy("to-nowhere", 1, action={"type": "Forward", "pools": [{"poolRef": "nowhere"}]})
    tree = tree_of(bad, policy("fine", 2, match={"path": {"value": "/f"}}))
    assert used(tree) == ["fine"]
    reason, message = problem(tree, "to-nowhere")
    assert reason == "PoolNotFound"
    assert "action.pools names Pool nowhere, which does not exist" in message
    assert "vipRef: web" in message
    # once the pool exists, the same policy is used
    again = tree_of(bad, pools=("a", "nowhere"))
    assert used(again) == ["to-nowhere"]


def test_pool_of_another_vip_is_refused() -> None:
    theirs = policy("steal", action={"type": "Forward", "pools": [{"poolRef": "theirs"}]})
    tree = tree_of(theirs, owner={"theirs": "other-vip"})
    reason, message = problem(tree, "steal")
    assert reason == "PoolNotInVIP"
    assert "belongs to VIP other-vip: only pools of VIP web may be used" in message
    assert used(tree) == []


def test_deleting_or_invalid_pool_is_not_found() -> None:
    deleting = pool("old", deleting=True)
    invalid = snap("Pool", "bad", {"vipRef": "web", "lbMethod": "RANDOM"})
    tree = build_tree(vip(protocol="HTTP"), [pool("a"), deleting, invalid], {}, {})
    l7.attach(
        tree,
        [
            policy("p1", 1, action={"type": "Forward", "pools": [{"poolRef": "old"}]}),
            policy("p2", 2, action={"type": "Forward", "pools": [{"poolRef": "bad"}]}),
        ],
    )
    assert problem(tree, "p1") == (
        "PoolNotFound",
        "action.pools names Pool old, which is being deleted",
    )
    reason, message = problem(tree, "p2")
    assert reason == "PoolNotFound" and "Pool bad, which cannot be used: spec is invalid" in message


def test_a_weight_zero_pool_need_not_exist() -> None:
    split = {"type": "Forward", "pools": [{"poolRef": "a"}, {"poolRef": "later", "weight": 0}]}
    tree = tree_of(policy("p", action=split))
    assert used(tree) == ["p"]
    (p,) = load_balancer(tree, "192.0.2.1").listeners[0].policies
    assert p.action.pools == (model.WeightedPool("a", 1),)


def test_policies_need_an_http_vip() -> None:
    tree = tree_of(policy("p"), protocol="TCP")
    reason, message = problem(tree, "p")
    assert reason == "ProtocolMismatch"
    assert "VIP web has protocol TCP: L7 policies apply to HTTP VIPs only" in message


def test_invalid_spec_is_said() -> None:
    # The API server refuses it first; an object that got past it (no CEL) is caught here.
    bad = policy("rx", match={"path": {"type": "RegularExpression", "value": "^/a("}})
    tree = tree_of(bad, policy("ok", 2))
    reason, message = problem(tree, "rx")
    assert reason == "InvalidSpec"
    assert "invalid regular expression (RE2 syntax): missing ): ^/a(" in message
    assert used(tree) == ["ok"]


@pytest.mark.parametrize(
    ("redirect", "loop"),
    [
        ({"scheme": "http"}, True),
        ({"port": 80}, True),
        ({"scheme": "http", "port": 80}, True),
        ({"scheme": "https"}, False),
        ({"scheme": "http", "port": 8080}, False),
        ({"hostname": "example.com"}, False),
        ({"path": {"replaceFullPath": "/new"}}, False),
    ],
)
def test_a_redirect_back_to_the_vip_is_a_loop(redirect: dict[str, Any], loop: bool) -> None:
    spec = {"type": "Redirect", "redirect": {**redirect, "statusCode": 301}}
    tree = tree_of(policy("r", action=spec), port=80)
    reason, message = problem(tree, "r")
    assert (reason == "RedirectLoop") is loop
    if loop:
        assert "sends every request it takes back to VIP web as it came" in message


def test_same_priority_and_same_match_is_a_conflict_the_oldest_wins() -> None:
    match_1 = {
        "hostnames": ["a.example.com", "b.example.com"],
        "headers": [{"name": "X-A", "value": "1"}],
    }
    match_2 = {
        "hostnames": ["b.example.com", "a.example.com"],
        "headers": [{"name": "x-a", "value": "1"}],
    }
    old = policy("z-old", 7, created="2024-01-01T00:00:00Z", match=match_1)
    young = policy("a-young", 7, created="2024-02-01T00:00:00Z", match=match_2)
    other_priority = policy("other", 8, match=match_1)
    tree = tree_of(young, old, other_priority)
    assert used(tree) == ["z-old", "other"]
    reason, message = problem(tree, "a-young")
    assert reason == "Conflict"
    assert "L7Policy z-old (older) has the same priority (7) and the same match" in message


def test_same_priority_different_match_is_no_conflict() -> None:
    tree = tree_of(
        policy("p1", 7, match={"path": {"value": "/a"}}),
        policy("p2", 7, match={"path": {"value": "/a", "type": "Exact"}}),
    )
    assert used(tree) == ["p1", "p2"]


# ---- translation into the driver model -----------------------------------------------------------


def test_translate_every_part() -> None:
    full = policy(
        "full",
        3,
        match={
            "hostnames": ["shop.example.com", "*.example.com"],
            "path": {"type": "RegularExpression", "value": "^/api/v[0-9]+$"},
            "headers": [{"name": "X-Env", "value": "canary|beta", "type": "RegularExpression"}],
            "method": "POST",
            "queryParams": [{"name": "v", "value": "2"}],
        },
        action={
            "type": "Forward",
            "pools": [{"poolRef": "a", "weight": 80}, {"poolRef": "b", "weight": 20}],
        },
        requestHeaders={"set": [{"name": "X-A", "value": "1 2"}], "remove": ["X-Secret"]},
        responseHeaders={"add": [{"name": "X-Served-By", "value": "lb"}]},
    )
    redirect = policy(
        "redir",
        4,
        match={"path": {"type": "PathPrefix", "value": "/old"}},
        action={
            "type": "Redirect",
            "redirect": {
                "scheme": "https",
                "port": 8443,
                "path": {"replacePrefixMatch": "/new"},
                "statusCode": 301,
            },
        },
    )
    reject = policy(
        "deny", 5, match={"path": {"type": "Exact", "value": "/admin"}}, action={"type": "Reject"}
    )
    tree = tree_of(full, redirect, reject)
    lb = load_balancer(tree, "192.0.2.1")
    (listener,) = lb.listeners
    assert listener.default_pool == "a" and listener.forwarded_headers is True
    p_full, p_redirect, p_reject = listener.policies
    assert p_full == model.L7Policy(
        name="full",
        priority=3,
        match=model.Match(
            hostnames=("shop.example.com", "*.example.com"),
            path=model.PathMatch(model.PathMatchType.REGEX, "^/api/v[0-9]+$"),
            headers=(model.ValueMatch("X-Env", "canary|beta", model.ValueMatchType.REGEX),),
            method="POST",
            query_params=(model.ValueMatch("v", "2"),),
        ),
        action=model.Action(
            model.ActionType.FORWARD,
            pools=(model.WeightedPool("a", 80), model.WeightedPool("b", 20)),
        ),
        request_headers=model.HeaderChanges(
            set=(model.Header("X-A", "1 2"),), remove=("X-Secret",)
        ),
        response_headers=model.HeaderChanges(add=(model.Header("X-Served-By", "lb"),)),
    )
    assert p_redirect.action == model.Action(
        model.ActionType.REDIRECT,
        redirect=model.Redirect(
            scheme="https", port=8443, replace_prefix_match="/new", status_code=301
        ),
    )
    assert p_redirect.match.path == model.PathMatch(model.PathMatchType.PREFIX, "/old")
    assert p_reject.action == model.Action(model.ActionType.REJECT, status_code=403)
    assert required_features(lb) >= {
        "l7.host",
        "l7.path",
        "l7.regex",
        "l7.header",
        "l7.method",
        "l7.query",
        "l7.redirect",
        "l7.reject",
        "l7.header-modifier",
        "l7.weighted-split",
        "l7.multiple-pools",
        "http.forwarded-headers",
    }


@pytest.mark.parametrize(
    ("vip_spec", "expected"),
    [
        ({"protocol": "HTTP"}, True),
        ({"protocol": "HTTP", "forwardedHeaders": False}, False),
        ({"protocol": "HTTP", "forwardedHeaders": True}, True),
        ({"protocol": "TCP"}, False),
        ({"protocol": "HTTPS"}, False),
    ],
)
def test_forwarded_headers_default_on_for_http(vip_spec: dict[str, Any], expected: bool) -> None:
    tree = build_tree(vip(**vip_spec), [pool("a")], {}, {})
    assert load_balancer(tree, "192.0.2.1").listeners[0].forwarded_headers is expected


def test_a_single_pool_vip_asks_for_no_l7_feature() -> None:
    """Existing trees keep working unchanged: one pool, no policy, a TCP VIP."""
    tree = build_tree(vip(), [pool("a")], {"a": [member("m", "a")]}, {})
    lb = load_balancer(tree, "192.0.2.1")
    assert lb.listeners[0].default_pool == "a"
    assert not {f for f in required_features(lb) if f.startswith(("l7.", "http."))}


# ---- fitting a tree to a device that lacks features --------------------------------------------


class Lacking(Driver):
    """A driver that has every feature but ``lacks``; refuses nothing else."""

    def __init__(self, *lacks: str) -> None:
        self.features = frozenset(set(FEATURES) - set(lacks))

    def apply(self, device: Any, lb: Any) -> None:
        raise NotImplementedError

    def delete(self, device: Any, key: str) -> None:
        raise NotImplementedError

    def probe(self, device: Any) -> Any:
        raise NotImplementedError


def fitted(tree: Tree, *lacks: str) -> model.LoadBalancer:
    driver = Lacking(*lacks)
    lb = load_balancer(tree, "192.0.2.1")
    return l7.fit(tree, lb, lambda trial: why_unsupported(driver, {}, trial), device="dev1")


def test_an_unsupported_policy_alone_is_left_out_and_named() -> None:
    rx = policy("rx", 1, match={"path": {"type": "RegularExpression", "value": "^/x+$"}})
    plain = policy("plain", 2, match={"path": {"value": "/p"}})
    tree = tree_of(rx, plain)
    lb = fitted(tree, "l7.regex")
    assert [p.name for p in lb.listeners[0].policies] == ["plain"]
    reason, message = problem(tree, "rx")
    assert reason == "Unsupported"
    assert "device dev1 cannot serve this policy: lacks feature l7.regex" in message
    assert "the rest of VIP web is served" in message
    assert problem(tree, "plain") == (None, "")
    assert missing(lb, Lacking("l7.regex").features) == []


def test_a_device_with_every_feature_gets_the_tree_unchanged() -> None:
    tree = tree_of(policy("rx", 1, match={"path": {"type": "RegularExpression", "value": "^/x$"}}))
    before = load_balancer(tree, "192.0.2.1")
    assert fitted(tree) == before
    assert all(o.problem is None for o in tree.objects)


def test_forwarding_to_a_second_pool_needs_multiple_pools() -> None:
    to_b = policy("to-b", 1, action={"type": "Forward", "pools": [{"poolRef": "b"}]})
    to_a = policy("to-a", 2, match={"path": {"value": "/a"}})
    tree = tree_of(to_b, to_a)
    lb = fitted(tree, "l7.multiple-pools")
    assert [p.name for p in lb.listeners[0].policies] == ["to-a"]
    assert "l7.multiple-pools" in problem(tree, "to-b")[1]


def test_default_forwarded_headers_dropped_where_unsupported_explicit_ones_kept() -> None:
    tree = tree_of(policy("p"))
    lb = fitted(tree, "http.forwarded-headers")
    assert lb.listeners[0].forwarded_headers is False
    assert [p.name for p in lb.listeners[0].policies] == ["p"]
    explicit = tree_of(policy("p"), forwardedHeaders=True)
    kept = fitted(explicit, "http.forwarded-headers")
    assert kept.listeners[0].forwarded_headers is True  # the VIP as a whole says Unsupported
    assert why_unsupported(Lacking("http.forwarded-headers"), {}, kept) is not None


def test_essential_is_what_any_device_must_serve() -> None:
    tree = tree_of(policy("p", match={"headers": [{"name": "X", "value": "1"}]}))
    lb = load_balancer(tree, "192.0.2.1")
    lean = l7.essential(lb, tree.vip_spec)  # type: ignore[arg-type]
    assert lean.listeners[0].policies == () and lean.listeners[0].forwarded_headers is False
    assert lean.pools == lb.pools and lean.listeners[0].default_pool == "a"
    assert not {f for f in required_features(lean) if f.startswith(("l7.", "http."))}


# ---- statuses ------------------------------------------------------------------------------------


def statuses(tree: Tree) -> dict[str, dict[str, Any]]:
    lb = load_balancer(tree, "192.0.2.1")
    pairs = report.active(tree, lb, "dev1", health={}, device_ready=True)
    return {f"{obj.kind}/{obj.name}": doc for obj, doc in pairs}


def cond(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in doc["conditions"] if c["type"] == kind)


def test_statuses_of_policies_and_the_default_pool() -> None:
    bad = policy("bad", 1, action={"type": "Forward", "pools": [{"poolRef": "nowhere"}]})
    tree = tree_of(bad, policy("good", 2))
    docs = statuses(tree)
    assert docs["L7Policy/good"]["phase"] == "Active"
    assert cond(docs["L7Policy/good"], "Programmed")["status"] == "True"
    assert "operatingStatus" not in docs["L7Policy/good"]
    assert (docs["L7Policy/bad"]["phase"], docs["L7Policy/bad"]["reason"]) == (
        "Error",
        "PoolNotFound",
    )
    vip_doc = docs["VIP/web"]
    assert vip_doc["phase"] == "Active" and vip_doc["message"] == "active on device dev1"
    default = cond(vip_doc, "DefaultPool")
    assert (default["status"], default["reason"]) == ("True", "Resolved")
    assert default["message"] == "requests no L7Policy takes go to pool a"
    assert {p: d["phase"] for p, d in docs.items() if p.startswith("Pool/")} == {
        "Pool/a": "Active",
        "Pool/b": "Active",
    }


@pytest.mark.parametrize(
    ("pools", "ref", "reason", "said"),
    [
        ((), None, "NoDefaultPool", "the VIP has no pool"),
        (
            ("a",),
            "gone",
            "PoolNotFound",
            "spec.defaultPoolRef names Pool gone, which does not exist",
        ),
    ],
)
def test_no_default_pool_is_said_and_the_vip_stays_active(
    pools: tuple[str, ...], ref: str | None, reason: str, said: str
) -> None:
    spec = {"protocol": "HTTP", **({"defaultPoolRef": ref} if ref else {})}
    tree = build_tree(vip(**spec), [pool(p) for p in pools], {}, {})
    vip_doc = statuses(l7.attach(tree, []))["VIP/web"]
    default = cond(vip_doc, "DefaultPool")
    assert (vip_doc["phase"], default["status"], default["reason"]) == ("Active", "False", reason)
    assert said in default["message"] and default["message"].endswith("answered 503")
    assert vip_doc["message"] == f"active on device dev1; {default['message']}"
