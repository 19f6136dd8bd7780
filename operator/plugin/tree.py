"""A VIP's whole tree as plain data: what ``status``, ``describe`` and ``-o json`` show.

Children are found by their references (a Pool's ``vipRef``, a Member's or HealthMonitor's
``poolRef``), as the operator finds them; the Device by the VIP's ``status.device``, its owner
by the Device's ``status.agent`` and its Lease (``lbaas.dev/device`` annotation) in the
operator's namespace. Events are matched by uid, newest last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbaas.plugin.kube import Reader

DEVICE_LEASE_SELECTOR = "lbaas.dev/lease=device"
DEVICE_ANNOTATION = "lbaas.dev/device"


def _str(value: Any) -> str:
    if value is None:
        return ""
    return str(value.isoformat() if hasattr(value, "isoformat") else value)


def summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Kind, name and the status fields a person reads first."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    found: dict[str, Any] = {
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "phase": status.get("phase") or "",
        "reason": status.get("reason") or "",
        "message": status.get("message") or "",
    }
    if "operatingStatus" in status:
        found["operatingStatus"] = status["operatingStatus"]
    stale = status.get("observedGeneration")
    if stale is not None and meta.get("generation") and stale != meta["generation"]:
        found["observedGeneration"] = f"{stale} (spec is at {meta['generation']})"
    return found


def event(raw: Mapping[str, Any]) -> dict[str, Any]:
    involved = raw.get("involved_object") or {}
    return {
        "time": _str(raw.get("last_timestamp") or raw.get("event_time")),
        "type": raw.get("type") or "",
        "reason": raw.get("reason") or "",
        "object": f"{involved.get('kind')}/{involved.get('name')}",
        "message": raw.get("message") or "",
        "count": raw.get("count") or 1,
    }


def device_lease(reader: Reader, operator_namespace: str, device: str) -> dict[str, Any] | None:
    """The Device's Lease: holder, renew time, transitions (None when unreadable)."""
    for lease in reader.leases(operator_namespace, DEVICE_LEASE_SELECTOR):
        meta = lease.get("metadata") or {}
        if (meta.get("annotations") or {}).get(DEVICE_ANNOTATION) != device:
            continue
        spec = lease.get("spec") or {}
        return {
            "name": meta.get("name"),
            "holder": spec.get("holder_identity") or "",
            "renewTime": _str(spec.get("renew_time")),
            "transitions": spec.get("lease_transitions") or 0,
        }
    return None


def device_view(
    reader: Reader, device: Mapping[str, Any] | None, operator_namespace: str, name: str
) -> dict[str, Any]:
    if device is None:
        return {"kind": "Device", "name": name, "found": False}
    found = summary(device)
    status = device.get("status") or {}
    found.update(
        found=True,
        agent=status.get("agent") or "",
        vipCount=status.get("vipCount"),
        freeCapacity=status.get("freeCapacity"),
        schedulable=(device.get("spec") or {}).get("schedulable", True),
        lease=device_lease(reader, operator_namespace, name),
    )
    return found


def member_row(member: Mapping[str, Any]) -> dict[str, Any]:
    spec = member.get("spec") or {}
    row = summary(member)
    row.update(address=f"{spec.get('address')}:{spec.get('port')}", weight=spec.get("weight", 1))
    return row


def gather(
    reader: Reader,
    namespace: str,
    name: str,
    *,
    operator_namespace: str,
    events: int = 10,
) -> dict[str, Any]:
    """The VIP ``namespace/name`` and everything under and behind it."""
    vip = reader.need("vips", name, namespace)
    pools = [p for p in reader.objects("pools", namespace) if _ref(p, "vipRef") == name]
    pool_names = {str((p.get("metadata") or {}).get("name")) for p in pools}
    members = [m for m in reader.objects("members", namespace) if _ref(m, "poolRef") in pool_names]
    monitors = [
        m for m in reader.objects("healthmonitors", namespace) if _ref(m, "poolRef") in pool_names
    ]
    policies = [p for p in reader.objects("l7policies", namespace) if _ref(p, "vipRef") == name]
    status = vip.get("status") or {}
    spec = vip.get("spec") or {}
    device_name = str(status.get("device") or "")
    device = reader.get("devices", device_name, None) if device_name else None
    happened: list[dict[str, Any]] = []
    for obj in [vip, *pools, *members, *monitors, *policies]:
        happened += [event(e) for e in reader.events(obj, namespace)]
    if device is not None:
        happened += [event(e) for e in reader.events(device, operator_namespace)]
    happened.sort(key=lambda e: e["time"])
    tree: dict[str, Any] = {
        "vip": {
            **summary(vip),
            "namespace": namespace,
            "address": status.get("address") or spec.get("address") or "",
            "port": spec.get("port"),
            "protocol": spec.get("protocol", "TCP"),
        },
        "device": device_view(reader, device, operator_namespace, device_name)
        if device_name
        else None,
        "pools": [],
        "events": happened[-events:] if events else [],
    }
    for pool in sorted(pools, key=_name):
        pname = _name(pool)
        tree["pools"].append(
            {
                **summary(pool),
                "method": (pool.get("spec") or {}).get("lbMethod", "ROUND_ROBIN"),
                "healthMonitors": [
                    summary(m) for m in sorted(monitors, key=_name) if _ref(m, "poolRef") == pname
                ],
                "members": [
                    member_row(m) for m in sorted(members, key=_name) if _ref(m, "poolRef") == pname
                ],
            }
        )
    tree["policies"] = [policy_row(p) for p in sorted(policies, key=_policy_order)]
    if reader.notes:
        tree["notes"] = list(dict.fromkeys(reader.notes))
    return tree


def policy_row(policy: Mapping[str, Any]) -> dict[str, Any]:
    spec = policy.get("spec") or {}
    row = summary(policy)
    row.update(priority=spec.get("priority", 1000), action=(spec.get("action") or {}).get("type"))
    return row


def _policy_order(policy: Mapping[str, Any]) -> tuple[int, str]:
    """Evaluation order: priority, then name."""
    return int((policy.get("spec") or {}).get("priority", 1000)), _name(policy)


def health(tree: Mapping[str, Any]) -> str:
    """Members serving / all, e.g. ``2/3 ONLINE``."""
    members = [m for p in tree["pools"] for m in p["members"]]
    up = sum(1 for m in members if m.get("operatingStatus") in ("ONLINE", "NO_MONITOR"))
    return f"{up}/{len(members)}"


def _ref(obj: Mapping[str, Any], field: str) -> str:
    return str((obj.get("spec") or {}).get(field) or "")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
