"""The object kinds of a VIP's tree, in one registry: who is whose parent, by which field.

Every module that walks a tree (the index views, the orphan reports, the agents' triggers,
the Services controller's waves of writes, the status reports) asks here instead of naming
kinds in ``if`` chains, so a new kind of the tree is one entry::

    VIP ─┬─ Pool (spec.vipRef) ─┬─ Member (spec.poolRef)
         │                      └─ HealthMonitor (spec.poolRef)
         └─ L7Policy (spec.vipRef; names Pools of its VIP in its action)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.l7policy import L7PolicySpec
from lbaas.api.member import MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec
from lbaas.kube.resources import L7POLICIES, MEMBERS, MONITORS, POOLS, VIPS, Resource


@dataclass(frozen=True)
class TreeKind:
    kind: str
    resource: Resource
    spec: type[BaseModel]
    parent: str | None = None
    """The parent's kind (None: the VIP, the root)."""
    parent_field: str | None = None
    """The spec field that names the parent (same namespace)."""
    operating_status: bool = False
    """Its status reports ``operatingStatus`` (the device's view of its traffic)."""

    @property
    def depth(self) -> int:
        """0 for the VIP, 1 for its children...: the order generated objects are written in
        (a parent before its children, so a child never waits for one)."""
        return 0 if self.parent is None else BY_KIND[self.parent].depth + 1


VIP = TreeKind("VIP", VIPS, VIPSpec, operating_status=True)
POOL = TreeKind("Pool", POOLS, PoolSpec, "VIP", "vipRef", operating_status=True)
MEMBER = TreeKind("Member", MEMBERS, MemberSpec, "Pool", "poolRef", operating_status=True)
HEALTH_MONITOR = TreeKind("HealthMonitor", MONITORS, HealthMonitorSpec, "Pool", "poolRef")
L7_POLICY = TreeKind("L7Policy", L7POLICIES, L7PolicySpec, "VIP", "vipRef")

TREE: tuple[TreeKind, ...] = (VIP, POOL, MEMBER, HEALTH_MONITOR, L7_POLICY)
BY_KIND: dict[str, TreeKind] = {k.kind: k for k in TREE}
CHILD_KINDS: dict[str, TreeKind] = {k.kind: k for k in TREE if k.parent is not None}
"""Every kind but the VIP, by name."""


def children_of(kind: str) -> list[TreeKind]:
    """The kinds whose parent is ``kind``."""
    return [k for k in TREE if k.parent == kind]


def descendants_of(kind: str) -> Iterator[TreeKind]:
    """Every kind below ``kind``, parents before their children."""
    for child in children_of(kind):
        yield child
        yield from descendants_of(child.kind)


def waves() -> list[tuple[str, ...]]:
    """The kinds by depth: what can be written together, parents first."""
    depth = max(k.depth for k in TREE)
    return [tuple(k.kind for k in TREE if k.depth == d) for d in range(depth + 1)]
