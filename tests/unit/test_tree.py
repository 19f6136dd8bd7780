"""Building a VIP's desired tree from index snapshots, and rolling member health up."""

from __future__ import annotations

from typing import Any

import pytest

from lbaas.drivers import model
from lbaas.kube.client import trim
from lbaas.status import vip_operating_status
from lbaas.trees.translate import load_balancer
from lbaas.trees.tree import Tree, build_tree

NS = "team-a"


def snap(
    kind: str,
    name: str,
    spec: dict[str, Any],
    *,
    created: str = "2024-01-01T00:00:00Z",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "generation": 1,
        "creationTimestamp": created,
        "resourceVersion": "7",
        "managedFields": [{"manager": "kubectl"}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2024-02-01T00:00:00Z"
    return trim(
        {
            "apiVersion": "lbaas.dev/v1alpha1",
            "kind": kind,
            "metadata": meta,
            "spec": spec,
            "status": {"phase": "Active"},
        }
    )


def vip(name: str = "web", **spec: Any) -> dict[str, Any]:
    return snap("VIP", name, {"port": 80, **spec})


def pool(name: str, vip_ref: str = "web", **kw: Any) -> dict[str, Any]:
    return snap("Pool", name, {"vipRef": vip_ref, "protocol": "TCP"}, **kw)


def member(name: str, pool_ref: str, address: str = "10.1.0.1", **kw: Any) -> dict[str, Any]:
    return snap("Member", name, {"poolRef": pool_ref, "address": address, "port": 8080}, **kw)


def monitor(name: str, pool_ref: str, **kw: Any) -> dict[str, Any]:
    return snap("HealthMonitor", name, {"poolRef": pool_ref, "type": "TCP"}, **kw)


def names(objs: list[Any]) -> list[tuple[str, str]]:
    return [(o.kind, o.name) for o in objs]


def problems(tree: Any) -> dict[str, str | None]:
    return {o.name: o.problem_reason for o in tree.objects}


def pool_names(tree: Tree) -> list[str]:
    return [node.name for node in tree.pools]


def member_names(tree: Tree) -> list[str]:
    return [name for node in tree.pools for name, _ in node.members]


def monitor_names(tree: Tree) -> list[str]:
    return [node.monitor[0] for node in tree.pools if node.monitor is not None]


def test_cached_objects_drop_what_the_operator_never_reads() -> None:
    s = vip()
    assert "managedFields" not in s["metadata"] and "annotations" not in s["metadata"]
    assert s["metadata"]["resourceVersion"] == "7"  # kept: offers and conditional writes
    assert s["status"] == {"phase": "Active"}
    assert s["apiVersion"] == "lbaas.dev/v1alpha1"
    assert s["kind"] == "VIP"


def test_full_tree_becomes_a_load_balancer() -> None:
    tree = build_tree(
        vip(),
        [pool("p")],
        {"p": [member("m2", "p", "10.1.0.2"), member("m1", "p", "10.1.0.1")]},
        {"p": [monitor("hm", "p")]},
    )
    assert all(o.problem is None for o in tree.objects)
    assert tree.namespace == NS
    lb = load_balancer(tree, "192.0.2.10")
    assert isinstance(lb, model.LoadBalancer)
    assert lb.key == f"{NS}/web"
    assert lb.address == "192.0.2.10"
    (listener,) = lb.listeners
    assert (listener.name, listener.port, listener.protocol) == ("web", 80, model.Protocol.TCP)
    assert listener.default_pool == "p" and listener.connection_limit is None
    (p,) = lb.pools
    assert p.name == "p" and p.method == model.Method.ROUND_ROBIN
    assert sorted((m.name, m.address) for m in p.members) == [
        ("m1", "10.1.0.1"),
        ("m2", "10.1.0.2"),
    ]
    assert p.monitor is not None and (p.monitor.name, p.monitor.type) == ("hm", "TCP")
    assert names(tree.objects)[:2] == [("VIP", "web"), ("Pool", "p")]
    assert sorted(names(tree.objects)) == sorted(
        [("VIP", "web"), ("Pool", "p"), ("Member", "m1"), ("Member", "m2"), ("HealthMonitor", "hm")]
    )


def test_deleting_children_are_objects_but_not_desired() -> None:
    tree = build_tree(
        vip(),
        [pool("p")],
        {"p": [member("keep", "p"), member("gone", "p", "10.1.0.9", deleting=True)]},
        {"p": [monitor("hm", "p", deleting=True)]},
    )
    lb = load_balancer(tree, "192.0.2.10")
    assert [m.name for _, m in lb.members()] == ["keep"]
    assert lb.pools[0].monitor is None
    assert ("Member", "gone") in names(tree.objects)
    assert ("HealthMonitor", "hm") in names(tree.objects)
    assert all(o.problem is None for o in tree.objects)
    assert {o.name for o in tree.objects if o.deleting} == {"gone", "hm"}


def test_deleting_monitor_does_not_conflict_with_its_replacement() -> None:
    tree = build_tree(
        vip(),
        [pool("p")],
        {},
        {
            "p": [
                monitor("old", "p", created="2024-01-01T00:00:00Z", deleting=True),
                monitor("new", "p", created="2024-01-02T00:00:00Z"),
            ]
        },
    )
    assert monitor_names(tree) == ["new"]
    assert problems(tree)["old"] is None
    assert problems(tree)["new"] is None


def test_every_pool_is_in_the_tree_oldest_first() -> None:
    # Several pools per VIP (issue 20): no Conflict any more; none is the default unless the
    # VIP names one.
    young = pool("a-young", created="2024-03-01T00:00:00Z")
    old = pool("z-old", created="2024-01-01T00:00:00Z")
    tree = build_tree(
        vip(),
        [young, old],  # index order must not matter, nor name order
        {
            "z-old": [member("m-old", "z-old")],
            "a-young": [member("m-a-young", "a-young", "10.1.0.2")],
        },
        {"a-young": [monitor("hm-a-young", "a-young")]},
    )
    assert pool_names(tree) == ["z-old", "a-young"]
    assert all(o.problem is None for o in tree.objects)
    lb = load_balancer(tree, "192.0.2.10")
    assert [(p.name, [m.name for m in p.members]) for p in lb.pools] == [
        ("z-old", ["m-old"]),
        ("a-young", ["m-a-young"]),
    ]
    assert [p.monitor.name if p.monitor else None for p in lb.pools] == [None, "hm-a-young"]
    # No defaultPoolRef: the oldest pool, not the first by name, is the default (a second
    # Pool added takes no traffic away from the first).
    assert lb.listeners[0].default_pool == "z-old"
    assert (tree.default.reason, tree.default.name) == ("Resolved", "z-old")
    assert tree.default.message == (
        "requests no L7Policy takes go to pool z-old (the oldest of its pools:"
        " spec.defaultPoolRef chooses)"
    )


def test_same_creation_time_is_ordered_by_name() -> None:
    tree = build_tree(vip(), [pool("b"), pool("a")], {}, {})
    assert pool_names(tree) == ["a", "b"]
    assert problems(tree) == {"web": None, "a": None, "b": None}


def test_deleting_pool_is_left_out_and_its_children_wait() -> None:
    tree = build_tree(
        vip(),
        [
            pool("old", created="2024-01-01T00:00:00Z", deleting=True),
            pool("new", created="2024-05-01T00:00:00Z"),
        ],
        {"old": [member("m-old", "old")], "new": [member("m-new", "new")]},
        {},
    )
    assert pool_names(tree) == ["new"]
    assert member_names(tree) == ["m-new"]
    assert all(o.problem is None for o in tree.objects)
    assert ("Member", "m-old") in names(tree.objects)
    waiting = {o.name: o.waiting for o in tree.objects}
    assert waiting["m-old"] == "its Pool old is being deleted"
    assert tree.default.name == "new"  # the only pool in use is the default


def test_default_pool_is_the_one_named() -> None:
    tree = build_tree(vip(defaultPoolRef="b"), [pool("a"), pool("b")], {}, {})
    assert tree.default.name == "b" and tree.default.reason == "Resolved"
    assert load_balancer(tree, "192.0.2.10").listeners[0].default_pool == "b"


def test_default_pool_named_but_missing_is_said() -> None:
    tree = build_tree(vip(defaultPoolRef="gone"), [pool("a")], {}, {})
    assert tree.default.name is None  # not the only pool: the VIP named another one
    assert tree.default.reason == "PoolNotFound"
    assert "spec.defaultPoolRef names Pool gone, which does not exist" in tree.default.message
    assert load_balancer(tree, "192.0.2.10").listeners[0].default_pool is None


def test_default_pool_of_another_vip_is_said() -> None:
    tree = build_tree(
        vip(defaultPoolRef="theirs", protocol="HTTP"),
        [pool("a")],
        {},
        {},
        pool_owner=lambda name: {"theirs": "other", "a": "web"}.get(name),
    )
    assert tree.default.reason == "PoolNotInVIP"
    assert "Pool theirs, which belongs to VIP other" in tree.default.message
    assert tree.default.message.endswith("requests no L7Policy takes are answered 503")


def test_default_pool_named_but_invalid_is_said() -> None:
    bad = snap("Pool", "p", {"vipRef": "web", "lbMethod": "RANDOM"})
    tree = build_tree(vip(defaultPoolRef="p"), [bad], {}, {})
    assert tree.default.reason == "PoolNotFound"
    assert "Pool p, which cannot be used: spec is invalid" in tree.default.message


def test_second_monitor_is_a_conflict() -> None:
    tree = build_tree(
        vip(),
        [pool("p")],
        {},
        {
            "p": [
                monitor("a-second", "p", created="2024-01-02T00:00:00Z"),
                monitor("z-first", "p", created="2024-01-01T00:00:00Z"),
            ]
        },
    )
    assert monitor_names(tree) == ["z-first"]
    by_name = {o.name: o for o in tree.objects}
    assert by_name["a-second"].problem_reason == "Conflict"
    assert "pool p already has health monitor z-first" in (by_name["a-second"].problem or "")
    assert by_name["z-first"].problem is None
    assert by_name["p"].problem is None


def test_invalid_vip_spec() -> None:
    tree = build_tree(snap("VIP", "web", {"port": 0}), [], {}, {})
    assert tree.vip_spec is None
    assert tree.vip.problem_reason == "InvalidSpec"
    assert "port" in (tree.vip.problem or "")


def test_invalid_member_is_left_out_and_reported() -> None:
    bad = snap("Member", "bad", {"poolRef": "p", "address": "not-an-ip", "port": 80})
    tree = build_tree(vip(), [pool("p")], {"p": [bad, member("ok", "p")]}, {})
    assert member_names(tree) == ["ok"]
    assert problems(tree)["bad"] == "InvalidSpec"
    assert "address" in ({o.name: o for o in tree.objects}["bad"].problem or "")


def test_invalid_monitor_is_left_out_and_reported() -> None:
    bad = snap("HealthMonitor", "hm", {"poolRef": "p", "type": "TCP", "delay": 1, "timeout": 5})
    tree = build_tree(vip(), [pool("p")], {}, {"p": [bad]})
    assert monitor_names(tree) == []
    assert problems(tree)["hm"] == "InvalidSpec"


def test_invalid_pool_puts_its_children_in_parent_conflict() -> None:
    bad = snap("Pool", "p", {"vipRef": "web", "lbMethod": "RANDOM"})
    tree = build_tree(vip(), [bad], {"p": [member("m", "p")]}, {"p": [monitor("hm", "p")]})
    assert tree.pools == []
    assert member_names(tree) == []
    assert problems(tree) == {
        "web": None,
        "p": "InvalidSpec",
        "m": "ParentConflict",
        "hm": "ParentConflict",
    }


def test_udp_and_stream_pools_do_not_mix() -> None:
    """A UDP VIP needs a UDP Pool (and the other way round): the Pool is not used, with its
    reason, and its children say so."""
    udp_vip = vip(protocol="UDP")
    tree = build_tree(udp_vip, [pool("p")], {"p": [member("m", "p")]}, {})
    assert tree.pools == []
    assert problems(tree) == {"web": None, "p": "ProtocolMismatch", "m": "ParentConflict"}
    message = {o.name: o.problem for o in tree.objects}["p"] or ""
    assert "protocol TCP cannot serve VIP web of protocol UDP" in message
    udp_pool = snap("Pool", "p", {"vipRef": "web", "protocol": "UDP"})
    assert problems(build_tree(vip(protocol="HTTP"), [udp_pool], {}, {}))["p"] == (
        "ProtocolMismatch"
    )
    tree = build_tree(udp_vip, [udp_pool], {"p": [member("m", "p")]}, {})
    assert pool_names(tree) == ["p"] and member_names(tree) == ["m"]
    lb = load_balancer(tree, "192.0.2.9")
    assert lb.listeners[0].protocol == model.Protocol.UDP
    assert lb.pools[0].protocol == model.Protocol.UDP


@pytest.mark.parametrize(("kind", "refused"), [("HTTP", True), ("HTTPS", True), ("TCP", False),
                                               ("PING", False)])  # fmt: skip
def test_a_udp_pool_is_checked_by_connect_only(kind: str, refused: bool) -> None:
    udp_pool = snap("Pool", "p", {"vipRef": "web", "protocol": "UDP"})
    hm = snap("HealthMonitor", "hm", {"poolRef": "p", "type": kind})
    tree = build_tree(vip(protocol="UDP"), [udp_pool], {"p": [member("m", "p")]}, {"p": [hm]})
    assert member_names(tree) == ["m"]  # the pool serves either way
    if refused:
        assert monitor_names(tree) == [] and problems(tree)["hm"] == "ProtocolMismatch"
        message = {o.name: o.problem for o in tree.objects}["hm"] or ""
        assert f"type {kind} cannot check the members of UDP pool p" in message
    else:
        assert monitor_names(tree) == ["hm"] and problems(tree)["hm"] is None
    # The same monitor on a TCP pool is fine.
    tcp = build_tree(vip(), [pool("p")], {}, {"p": [hm]})
    assert monitor_names(tcp) == ["hm"]


def test_no_pool() -> None:
    tree = build_tree(vip(), [], {}, {})
    assert [o.name for o in tree.objects] == ["web"]
    lb = load_balancer(tree, "192.0.2.10")
    assert lb.pools == () and lb.listeners[0].default_pool is None
    assert list(lb.members()) == []


# ---- VIP operating status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"a": "ONLINE", "b": "ONLINE"}, "ONLINE"),
        ({"a": "NO_MONITOR"}, "ONLINE"),
        ({"a": "ONLINE", "b": "OFFLINE", "c": "DRAINING"}, "ONLINE"),
        ({"a": "ONLINE", "b": "ERROR"}, "DEGRADED"),
        ({"a": "NO_MONITOR", "b": "ERROR", "c": "OFFLINE"}, "DEGRADED"),
        ({"a": "ERROR", "b": "ERROR"}, "ERROR"),
        ({"a": "OFFLINE", "b": "DRAINING"}, "ERROR"),
        ({}, "ERROR"),
        # The device cannot tell: never ONLINE on a guess.
        ({"a": "UNKNOWN", "b": "UNKNOWN"}, "UNKNOWN"),
        ({"a": "ONLINE", "b": "UNKNOWN"}, "UNKNOWN"),
        ({"a": "UNKNOWN", "b": "ERROR"}, "DEGRADED"),
    ],
)
def test_vip_operating_status(members: dict[str, str], expected: str) -> None:
    assert vip_operating_status(True, members, True) == expected


@pytest.mark.parametrize("members", [{"a": "ONLINE"}, {"a": "ERROR"}, {}])
def test_admin_down_vip_is_offline(members: dict[str, str]) -> None:
    assert vip_operating_status(False, members, True) == "OFFLINE"


@pytest.mark.parametrize("members", [{"a": "ONLINE"}, {"a": "UNKNOWN"}, {}])
def test_vip_on_a_device_that_is_not_ready_is_offline(members: dict[str, str]) -> None:
    assert vip_operating_status(True, members, False) == "OFFLINE"
