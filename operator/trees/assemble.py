"""A VIP's tree as the index views hold it, with its device's member policy applied.

Shared by the agent (to apply it), the binder (to report why a VIP has no device) and the
controller's report for devices no agent drives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbaas.api.device import DeviceSpec
from lbaas.api.member import MemberSpec
from lbaas.placement.policy import member_address_problem
from lbaas.trees import l7
from lbaas.trees.tree import Tree, build_tree
from lbaas.views import Views, spec_of

VipKey = tuple[str, str]


def build(
    views: Views, key: VipKey, vip: Mapping[str, Any], spec: DeviceSpec | None, device: str
) -> Tree:
    """The tree of ``vip`` as the views hold it; members the device refuses are marked."""
    namespace = key[0]
    pools = views.children("Pool", namespace, key[1])
    members_of = {
        p["metadata"]["name"]: views.children("Member", namespace, p["metadata"]["name"])
        for p in pools
    }
    monitors_of = {
        p["metadata"]["name"]: views.children("HealthMonitor", namespace, p["metadata"]["name"])
        for p in pools
    }

    def member_check(member: MemberSpec) -> tuple[str, str] | None:
        if spec is None:
            return None
        for address in (member.address, member.monitor_address):
            if address:
                problem = member_address_problem(spec, address, device)
                if problem:
                    return "MemberAddressNotAllowed", problem
        return None

    def pool_owner(name: str) -> str | None:
        found = views.pool(namespace, name)
        return None if found is None else str(spec_of(found).get("vipRef") or "")

    tree = build_tree(vip, pools, members_of, monitors_of, member_check, pool_owner)
    policies = views.children("L7Policy", namespace, key[1])
    return l7.attach(tree, policies, pool_owner)
