"""What each object of a tree should report, for each outcome of a reconcile (pure).

Every function returns ``(object, desired status)`` pairs for the reporter to apply. Agents
own ``phase``, ``reason``, ``message``, ``observedGeneration``, ``operatingStatus`` and the
``Programmed`` and ``Ready`` conditions; the controller owns a VIP's binding (``device``,
``address``, ``Scheduled``) and speaks for trees no agent serves (no device, no parent).
Provisioning (phase) and operation (``operatingStatus``) are kept apart, as Octavia does: a
VIP programmed on a device that went NotReady stays ``Active`` but says ``Ready=False``
``DeviceNotReady`` and ``OFFLINE``, and its members ``UNKNOWN``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbaas.api.member import MemberOperatingStatus as M
from lbaas.drivers.model import LoadBalancer
from lbaas.kinds import BY_KIND
from lbaas.status import (
    DEFAULT_POOL,
    PROGRAMMED,
    READY,
    SCHEDULED,
    Cond,
    desired_status,
    member_state,
    vip_operating_status,
)
from lbaas.trees.tree import Tree, TreeObject

Pair = tuple[TreeObject, dict[str, Any]]


def _doc(
    obj: TreeObject,
    phase: str,
    reason: str,
    message: str,
    conds: list[Cond],
    *,
    extra: Mapping[str, Any] | None = None,
    generation: int | None = None,
) -> Pair:
    return obj, desired_status(
        obj.status,
        phase=phase,
        reason=reason,
        message=message,
        generation=generation,
        conditions=conds,
        extra=extra,
    )


def _invalid(obj: TreeObject) -> Pair:
    reason = obj.problem_reason or "Invalid"
    problem = obj.problem or "invalid"
    extra = {"operatingStatus": M.OFFLINE} if obj.kind == "Member" else None
    return _doc(
        obj,
        "Error",
        reason,
        problem,
        [Cond(PROGRAMMED, False, reason, problem), Cond(READY, False, reason, problem)],
        extra=extra,
        generation=obj.generation,
    )


def waiting(obj: TreeObject, why: str) -> Pair:
    """A child whose parent is missing or going away (what its spec names now: the status
    describes this generation)."""
    return _doc(
        obj,
        "Pending",
        "WaitingForParent",
        f"waiting for its parent: {why}",
        [
            Cond(PROGRAMMED, False, "WaitingForParent", why),
            Cond(READY, False, "WaitingForParent", why),
        ],
        generation=obj.generation,
    )


def parent_not_found(obj: TreeObject, message: str) -> Pair:
    return _doc(
        obj,
        "Error",
        "ParentNotFound",
        message,
        [
            Cond(PROGRAMMED, False, "ParentNotFound", message),
            Cond(READY, False, "ParentNotFound", message),
        ],
        generation=obj.generation,
    )


def failed(
    tree: Tree,
    phase: str,
    reason: str,
    message: str,
    *,
    children: tuple[str, str, str] | None = None,
) -> list[Pair]:
    """The whole tree fails (the driver refused it, the device is in Error...)."""
    out: list[Pair] = []
    for obj in tree.objects:
        if obj.deleting:
            continue
        if obj.waiting:
            out.append(waiting(obj, obj.waiting))
            continue
        if obj.problem:
            out.append(_invalid(obj))
            continue
        o_phase, o_reason, o_message = phase, reason, message
        if obj is not tree.vip and children is not None:
            o_phase, o_reason, o_message = children
        conds = [
            Cond(PROGRAMMED, False, o_reason, o_message),
            Cond(READY, False, o_reason, o_message),
        ]
        extra = {"operatingStatus": "OFFLINE"} if BY_KIND[obj.kind].operating_status else None
        out.append(
            _doc(obj, o_phase, o_reason, o_message, conds, extra=extra, generation=obj.generation)
        )
    return out


def pending(tree: Tree, device: str) -> list[Pair]:
    """Objects whose change is being applied (only shown when an apply is slow)."""
    out = []
    for obj in tree.objects:
        if obj.deleting or obj.problem or obj.waiting:
            continue
        if obj.status.get("observedGeneration") == obj.generation and obj.status.get("phase"):
            continue
        message = f"applying to device {device}"
        out.append(
            _doc(
                obj,
                "Pending",
                "Applying",
                message,
                [
                    Cond(PROGRAMMED, None, "Applying", message),
                    Cond(READY, False, "Applying", message),
                ],
                generation=obj.status.get("observedGeneration"),
            )
        )
    return out


def member_states(
    lb: LoadBalancer, health: Mapping[str, Any] | None, device_ready: bool
) -> dict[str, str]:
    """Each member's operating status: spec first, then what the device observed.

    ``health`` None means the device could not be read: monitored members are UNKNOWN.
    """
    states = {}
    for pool, member in lb.members():
        monitored = pool.monitor is not None and pool.monitor.admin_state_up
        observed = (health or {}).get(member.name)
        states[member.name] = member_state(
            admin_up=member.admin_state_up and pool.admin_state_up,
            weight=member.weight,
            monitored=monitored,
            observed=str(observed) if observed is not None else None,
            device_can_tell=device_ready and (health is not None or not monitored),
        )
    return states


def active(
    tree: Tree,
    lb: LoadBalancer,
    device: str,
    *,
    health: Mapping[str, Any] | None,
    device_ready: bool,
    device_message: str = "",
) -> list[Pair]:
    """The tree is programmed on ``device``; operating statuses from ``health``."""
    members = member_states(lb, health, device_ready)
    admin_up = all(listener.admin_state_up for listener in lb.listeners)
    rollup = vip_operating_status(admin_up, members, device_ready)
    pools = {
        p.name: vip_operating_status(
            admin_up, {m.name: members[m.name] for m in p.members}, device_ready
        )
        for p in lb.pools
    }
    if device_ready:
        ready = Cond(READY, True, "Ready", "serving")
        reason, message = "Programmed", f"active on device {device}"
    else:
        why = f"device {device} is not ready: {device_message or 'no answer'}"
        ready = Cond(READY, False, "DeviceNotReady", why)
        reason, message = "DeviceNotReady", why
    programmed = Cond(PROGRAMMED, True, "Programmed", f"programmed on device {device}")
    out: list[Pair] = []
    for obj in tree.objects:
        if obj.deleting:
            continue
        if obj.waiting:
            out.append(waiting(obj, obj.waiting))
            continue
        if obj.problem:
            out.append(_invalid(obj))
            continue
        extra: dict[str, Any] = {}
        conds, said = [programmed, ready], message
        if obj.kind == "VIP":
            extra = {"operatingStatus": rollup}
            default = tree.default
            conds.append(
                Cond(DEFAULT_POOL, default.name is not None, default.reason, default.message)
            )
            if default.name is None:
                said = f"{message}; {default.message}"
        elif obj.kind == "Pool":
            extra = {"operatingStatus": pools.get(obj.name, rollup)}
        elif obj.kind == "Member":
            extra = {"operatingStatus": members.get(obj.name, M.OFFLINE)}
        out.append(_doc(obj, "Active", reason, said, conds, extra=extra, generation=obj.generation))
    return out


def unscheduled(tree: Tree, reason: str, message: str) -> list[Pair]:
    """The controller's report for a VIP it cannot bind, and its children."""
    vip_obj, children = tree.vip, tree.objects[1:]
    out = [
        _doc(
            vip_obj,
            "Error",
            reason,
            message,
            [Cond(SCHEDULED, False, reason, message), Cond(READY, False, reason, message)],
            extra={"device": None, "address": None, "operatingStatus": None},
            generation=vip_obj.generation,
        )
    ]
    why = f"VIP {vip_obj.name} has no device: {message}"
    for obj in children:
        if obj.deleting:
            continue
        if obj.problem:
            out.append(_invalid(obj))
            continue
        out.append(
            _doc(
                obj,
                "Pending",
                "VIPNotScheduled",
                why,
                [
                    Cond(PROGRAMMED, False, "VIPNotScheduled", why),
                    Cond(READY, False, "VIPNotScheduled", why),
                ],
            )
        )
    return out
