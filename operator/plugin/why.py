"""``kubectl lbaas why KIND/NAME``: the chain of reasons behind a Pending or Error object.

Each link is one object and what its status says; the chain follows what the object depends
on: a Member or HealthMonitor → its Pool → its VIP → the VIP's Device → the agent holding the
Device's Lease. It stops at the first missing link (a parent that does not exist, a device no
agent holds). A VIP the scheduler could not place (``NoEligibleDevice``...) lists the
exclusions its message gives, one per line, and the Devices the user can see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbaas.leases import device_lease_name
from lbaas.plugin.kube import KINDS, Reader
from lbaas.plugin.tree import device_lease, summary

PARENT = {
    "members": ("pools", "poolRef"),
    "healthmonitors": ("pools", "poolRef"),
    "pools": ("vips", "vipRef"),
    "l7policies": ("vips", "vipRef"),
}
SCHEDULING = ("NoEligibleDevice", "AddressNotAllowed", "AddressInUse", "QuotaExceeded")


def link(obj: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    found = summary(obj)
    found.update({k: v for k, v in extra.items() if v not in (None, "", [])})
    return found


def exclusions(message: str) -> list[str]:
    """The per-device reasons of a scheduling message: ``...: 2 full, 1 NotReady`` or
    ``a; b; c``, one per entry."""
    _head, sep, tail = message.partition(": ")
    if sep and ", " in tail:
        return [part.strip() for part in tail.split(", ") if part.strip()]
    if "; " in message:
        return [part.strip() for part in message.split("; ") if part.strip()]
    return []


def devices_seen(reader: Reader) -> list[dict[str, Any]]:
    rows = []
    for device in sorted(reader.objects("devices", None), key=lambda d: d["metadata"]["name"]):
        spec, status = device.get("spec") or {}, device.get("status") or {}
        rows.append(
            {
                "name": device["metadata"]["name"],
                "phase": status.get("phase") or "",
                "reason": status.get("reason") or "",
                "schedulable": spec.get("schedulable", True),
                "free": status.get("freeCapacity"),
                "allowedNamespaces": ",".join(spec.get("allowedNamespaces") or []) or "(all)",
            }
        )
    return rows


def device_links(reader: Reader, name: str, operator_namespace: str) -> list[dict[str, Any]]:
    """The Device and who drives it."""
    device = reader.get("devices", name, None)
    if device is None:
        return [{"kind": "Device", "name": name, "missing": True}]
    status = device.get("status") or {}
    lease = device_lease(reader, operator_namespace, name)
    chain = [link(device, agent=status.get("agent") or "")]
    selector = (device.get("spec") or {}).get("agentSelector")
    if lease is None or not lease["holder"]:
        agents = reader.leases(operator_namespace, "lbaas.dev/lease=agent")
        chain.append(
            {
                "kind": "Lease",
                "name": lease["name"] if lease else device_lease_name(name),
                "holder": "",
                "message": "no agent holds this device's Lease",
                "agentSelector": selector or "(any agent)",
                "agentsPresent": ", ".join(
                    sorted(str((a.get("spec") or {}).get("holder_identity") or "?") for a in agents)
                )
                or "(none)",
            }
        )
    else:
        chain.append({"kind": "Lease", **lease})
    return chain


def chain(
    reader: Reader, plural: str, name: str, namespace: str, *, operator_namespace: str
) -> list[dict[str, Any]]:
    """The links from ``plural/name`` to the first that explains it (or to the agent)."""
    if plural == "devices":
        return device_links(reader, name, operator_namespace)
    links: list[dict[str, Any]] = []
    current, current_name = plural, name
    while True:
        obj = reader.get(current, current_name, namespace)
        if obj is None:
            links.append(
                {
                    "kind": KINDS[current],
                    "name": current_name,
                    "missing": True,
                    "message": f"{KINDS[current]} {current_name} does not exist in"
                    f" namespace {namespace}",
                }
            )
            return links
        if current in PARENT:
            links.append(link(obj))
            current, field = PARENT[current]
            current_name = str((obj.get("spec") or {}).get(field) or "")
            continue
        status = obj.get("status") or {}
        reason = str(status.get("reason") or "")
        extra: dict[str, Any] = {"device": status.get("device") or ""}
        if reason in SCHEDULING:
            extra["exclusions"] = exclusions(str(status.get("message") or ""))
        links.append(link(obj, **extra))
        if reason in SCHEDULING:
            links[-1]["devices"] = devices_seen(reader)  # shown even when none is visible
        if status.get("device"):
            links += device_links(reader, str(status["device"]), operator_namespace)
        return links


def verdict(links: list[dict[str, Any]]) -> str:
    """One line: the deepest link in trouble (what the others wait for)."""
    for item in reversed(links):
        if item.get("missing"):
            return f"{item['kind']} {item['name']} is missing"
        if item["kind"] == "Lease" and not item.get("holder"):
            return "no agent drives the device"
        if item.get("phase") in ("Error", "Pending", "NotReady"):
            reason = f" ({item['reason']})" if item.get("reason") else ""
            return f"{item['kind']} {item['name']} is {item['phase']}{reason}"
    return "nothing wrong: every object is Active and its device Ready"
