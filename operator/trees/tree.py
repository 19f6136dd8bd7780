"""Building the desired tree of one VIP from what the indices hold.

A tree is the VIP, its pools, each pool's members and health monitor, and its L7 policies
(``lbaas.trees.l7`` adds those). Objects being deleted are left out of the desired state (so
the driver removes them) but kept in ``objects`` so their deletion can be confirmed. Every
valid pool of the VIP is in the tree; the default pool (requests no policy takes) is the one
``spec.defaultPoolRef`` names, else the only pool. A second monitor for the same pool is a
conflict: the oldest wins and the others are reported, never silently merged.
``translate`` turns a tree into the driver data model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.l7policy import L7PolicySpec
from lbaas.api.member import MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec

M = TypeVar("M", bound=BaseModel)

Snapshot = Mapping[str, Any]
"""An object as an informer caches it: apiVersion, kind, metadata, spec, status."""

MemberCheck = Callable[[MemberSpec], tuple[str, str] | None]
"""Why a member may not be used on the tree's device: (reason, message), or None."""
PoolOwner = Callable[[str], str | None]
"""The VIP a Pool of the tree's namespace names (``vipRef``), by the Pool's name; None when
no such Pool exists (to tell a missing pool from another VIP's)."""


def name_of(snap: Snapshot) -> str:
    return str(snap["metadata"]["name"])


def is_deleting(snap: Snapshot) -> bool:
    return bool(snap["metadata"].get("deletionTimestamp"))


def _age_key(snap: Snapshot) -> tuple[str, str]:
    return (str(snap["metadata"].get("creationTimestamp") or ""), name_of(snap))


@dataclass
class TreeObject:
    """One object of the tree and what the reconcile found about it."""

    snap: Snapshot
    problem_reason: str | None = None
    problem: str | None = None
    waiting: str | None = None  # why it is Pending (its parent is going away), if it is

    @property
    def kind(self) -> str:
        return str(self.snap["kind"])

    @property
    def name(self) -> str:
        return name_of(self.snap)

    @property
    def generation(self) -> int:
        return int(self.snap["metadata"].get("generation") or 0)

    @property
    def deleting(self) -> bool:
        return is_deleting(self.snap)

    @property
    def status(self) -> Mapping[str, Any]:
        return self.snap.get("status") or {}


@dataclass
class PoolNode:
    """A pool in use: its spec, the members that may go to the device, its monitor."""

    obj: TreeObject
    spec: PoolSpec
    members: list[tuple[str, MemberSpec]] = field(default_factory=list)
    monitor: tuple[str, HealthMonitorSpec] | None = None

    @property
    def name(self) -> str:
        return self.obj.name


@dataclass
class PolicyNode:
    """An L7 policy that may go to the device: valid, its pools in the tree, no conflict."""

    obj: TreeObject
    spec: L7PolicySpec

    @property
    def name(self) -> str:
        return self.obj.name


@dataclass(frozen=True)
class DefaultPool:
    """Where requests no policy takes go, and why (for the VIP's ``DefaultPool`` condition).

    ``reason``: ``Resolved`` (``name`` is set: ``defaultPoolRef``'s, else the oldest pool),
    ``NoDefaultPool`` (no pool), ``PoolNotFound`` / ``PoolNotInVIP`` (``defaultPoolRef`` names
    no pool of the VIP)."""

    name: str | None
    reason: str
    message: str


@dataclass
class Tree:
    vip: TreeObject
    vip_spec: VIPSpec | None
    objects: list[TreeObject]  # every object of the tree, VIP first
    pools: list[PoolNode]  # the pools in use, oldest first
    default: DefaultPool = DefaultPool(None, "NoDefaultPool", "the VIP has no pool")
    policies: list[PolicyNode] = field(default_factory=list)
    """The policies in use, in evaluation order (priority, then name)."""

    @property
    def namespace(self) -> str:
        return str(self.vip.snap["metadata"]["namespace"])

    def unobserved(self) -> bool:
        """Whether an object's spec changed since its status was last written: the status
        then speaks of an older spec, not of what the device does with this one."""
        return any(
            o.status.get("observedGeneration") != o.generation
            for o in self.objects
            if not (o.deleting or o.problem or o.waiting)
        )


def parse(model: type[M], obj: TreeObject) -> M | None:
    """``obj``'s spec as ``model``; None (and ``obj`` marked InvalidSpec) when it does not
    validate."""
    try:
        return model.model_validate(obj.snap.get("spec") or {})
    except ValidationError as exc:
        obj.problem_reason = "InvalidSpec"
        obj.problem = f"spec is invalid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        return None


def _pick_one(
    snaps: Iterable[Snapshot], what: str, owner: str
) -> tuple[TreeObject | None, list[TreeObject]]:
    """The oldest live object wins; other live ones are conflicts; deleting ones tag along."""
    objs = [TreeObject(s) for s in sorted(snaps, key=_age_key)]
    live = [o for o in objs if not o.deleting]
    winner = live[0] if live else None
    for loser in live[1:]:
        loser.problem_reason = "Conflict"
        loser.problem = (
            f"{owner} already has {what} {winner.name if winner else '?'}; only one is allowed:"
            f" delete this one or point it elsewhere"
        )
    return winner, objs


PROTOCOL_MISMATCH = "ProtocolMismatch"
UDP = "UDP"
_REQUEST_MONITORS = ("HTTP", "HTTPS")


def _protocol_mismatch(vip: str, vip_spec: VIPSpec, pool: PoolSpec) -> str | None:
    """Why a Pool cannot serve its VIP: datagrams and streams do not mix (a UDP VIP needs a
    UDP Pool and the other way round); None when it can."""
    if (vip_spec.protocol == UDP) == (pool.protocol == UDP):
        return None
    return (
        f"protocol {pool.protocol} cannot serve VIP {vip} of protocol {vip_spec.protocol}:"
        " a UDP VIP needs a Pool of protocol UDP, and a UDP Pool a UDP VIP"
    )


def _monitor_mismatch(pool: str, pool_spec: PoolSpec, monitor: HealthMonitorSpec) -> str | None:
    """Why a HealthMonitor cannot check a Pool's members: an HTTP(S) request to a UDP port is
    never answered (a UDP pool is checked by TCP connect or PING)."""
    if pool_spec.protocol == UDP and monitor.type in _REQUEST_MONITORS:
        return (
            f"type {monitor.type} cannot check the members of UDP pool {pool} (no HTTP over a"
            " UDP port): use TCP or PING (a TCP connect to the member's port or monitorPort)"
        )
    return None


def build_tree(
    vip: Snapshot,
    pools: Iterable[Snapshot],
    members_of: Mapping[str, Iterable[Snapshot]],
    monitors_of: Mapping[str, Iterable[Snapshot]],
    member_check: MemberCheck | None = None,
    pool_owner: PoolOwner | None = None,
) -> Tree:
    """Assemble a VIP's tree. ``members_of``/``monitors_of`` map a pool name to its children.

    ``member_check`` (the device's member policy) leaves refused members out of the desired
    state, marked with its reason; the rest of the pool keeps serving. ``pool_owner`` tells
    a ``defaultPoolRef`` to another VIP's pool from one to no pool at all.
    """
    vip_obj = TreeObject(vip)
    vip_spec = parse(VIPSpec, vip_obj)
    objects = [vip_obj]
    pool_objs = [TreeObject(s) for s in sorted(pools, key=_age_key)]
    objects += pool_objs
    nodes: list[PoolNode] = []
    for pool in pool_objs:
        pool_spec = None if pool.deleting else parse(PoolSpec, pool)
        mismatch = (
            _protocol_mismatch(vip_obj.name, vip_spec, pool_spec)
            if pool_spec is not None and vip_spec is not None
            else None
        )
        if mismatch:
            pool.problem_reason, pool.problem = PROTOCOL_MISMATCH, mismatch
            pool_spec = None
        member_objs = [TreeObject(s) for s in sorted(members_of.get(pool.name, ()), key=_age_key)]
        objects += member_objs
        mon_obj, mon_objs = _pick_one(
            monitors_of.get(pool.name, ()), "health monitor", f"pool {pool.name}"
        )
        objects += mon_objs
        if pool_spec is None:
            for child in member_objs + mon_objs:
                if child.problem:
                    continue
                if pool.deleting:
                    child.waiting = f"its Pool {pool.name} is being deleted"
                else:
                    child.problem_reason = "ParentConflict"
                    child.problem = f"its pool {pool.name} is not in use: {pool.problem}"
            continue
        nodes.append(_pool_node(pool, pool_spec, member_objs, mon_obj, member_check))
    tree = Tree(vip=vip_obj, vip_spec=vip_spec, objects=objects, pools=nodes)
    if vip_spec is not None:
        tree.default = default_pool(tree, vip_spec, pool_owner)
    return tree


def _pool_node(
    pool: TreeObject,
    spec: PoolSpec,
    member_objs: list[TreeObject],
    mon_obj: TreeObject | None,
    member_check: MemberCheck | None,
) -> PoolNode:
    node = PoolNode(pool, spec)
    for m in member_objs:
        member_spec = parse(MemberSpec, m)
        if member_spec is None or m.deleting:
            continue
        refused = member_check(member_spec) if member_check else None
        if refused:
            m.problem_reason, m.problem = refused
            continue
        node.members.append((m.name, member_spec))
    if mon_obj is not None:
        monitor_spec = parse(HealthMonitorSpec, mon_obj)
        why = monitor_spec and _monitor_mismatch(pool.name, spec, monitor_spec)
        if why:
            mon_obj.problem_reason, mon_obj.problem = PROTOCOL_MISMATCH, why
        elif monitor_spec is not None:
            node.monitor = (mon_obj.name, monitor_spec)
    return node


def default_pool(tree: Tree, spec: VIPSpec, pool_owner: PoolOwner | None = None) -> DefaultPool:
    """The pool for requests no policy takes: ``defaultPoolRef``'s, else the oldest pool (ties
    by name, as everywhere here): a second Pool added to a VIP that names none must not take
    its traffic away (it did, for a moment, 503 to everything no policy took)."""
    in_use = [node.name for node in tree.pools]  # oldest first
    named = spec.default_pool_ref
    if named is None and in_use:
        oldest = in_use[0]
        chosen = " (the oldest of its pools: spec.defaultPoolRef chooses)" if in_use[1:] else ""
        message = f"requests no L7Policy takes go to pool {oldest}{chosen}"
        return DefaultPool(oldest, "Resolved", message)
    if named in in_use:
        return DefaultPool(named, "Resolved", f"requests no L7Policy takes go to pool {named}")
    if str(spec.protocol) == "TCP":
        answer = "connections are closed"
    else:
        answer = "requests no L7Policy takes are answered 503"
    if named is not None:
        reason, why = pool_problem(tree, named, pool_owner, what="spec.defaultPoolRef")
        return DefaultPool(None, reason, f"{why}: {answer}")
    return DefaultPool(None, "NoDefaultPool", f"the VIP has no pool: {answer}")


def pool_problem(
    tree: Tree, name: str, pool_owner: PoolOwner | None, *, what: str
) -> tuple[str, str]:
    """Why the pool ``name`` that ``what`` names is not one of the tree's pools in use:
    (``PoolNotFound`` | ``PoolNotInVIP``, message)."""
    vip = tree.vip.name
    obj = next((o for o in tree.objects if o.kind == "Pool" and o.name == name), None)
    if obj is not None and obj.deleting:
        return "PoolNotFound", f"{what} names Pool {name}, which is being deleted"
    if obj is not None:
        return "PoolNotFound", f"{what} names Pool {name}, which cannot be used: {obj.problem}"
    owner = pool_owner(name) if pool_owner is not None else None
    if owner is not None and owner != vip:
        return (
            "PoolNotInVIP",
            f"{what} names Pool {name}, which belongs to VIP {owner}: only pools of VIP {vip}"
            " may be used",
        )
    return (
        "PoolNotFound",
        f"{what} names Pool {name}, which does not exist; create it (vipRef: {vip}) or fix"
        " the name",
    )
