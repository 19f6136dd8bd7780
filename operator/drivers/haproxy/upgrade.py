"""VIP files written by the 0.1 driver, read as the driver data model.

The 0.1 driver stored each VIP's tree as the API's own objects (``spec``, ``pool``,
``members``, ``monitor``: the ``wire()`` form of the VIP, Pool, Member and HealthMonitor
specs). A device upgraded in place still holds those files; they are read as the tree the core
now sends for the same objects (one listener named after the VIP, the pool under its own name,
the VIP's session persistence on the pool), so the device keeps serving them after a restart.
The first apply of each writes it in the current format (``verify`` reports the old file as
``VIPFileOutdated``, so the operator re-applies it; its fragment is rendered again once).

The document is checked by :func:`lbaas.drivers.documents.from_document` like any stored tree:
a field of the wrong type is refused, as the 0.1 driver's pydantic models refused it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbaas.drivers.documents import from_document
from lbaas.drivers.model import LoadBalancer

V0_KEYS = frozenset({"spec", "pool", "members", "monitor"})
"""A document with these keys is a 0.1 VIP file."""

_MEMBER = {
    "address": "address",
    "port": "port",
    "weight": "weight",
    "backup": "backup",
    "adminStateUp": "admin_state_up",
    "monitorAddress": "monitor_address",
    "monitorPort": "monitor_port",
}
_MONITOR = {
    "type": "type",
    "delay": "delay",
    "timeout": "timeout",
    "maxRetries": "max_retries",
    "maxRetriesDown": "max_retries_down",
    "httpMethod": "http_method",
    "urlPath": "url_path",
    "expectedCodes": "expected_codes",
    "adminStateUp": "admin_state_up",
}


def is_v0(data: Mapping[str, Any]) -> bool:
    return "version" not in data and set(data) >= V0_KEYS


def _fields(spec: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The 0.1 spec's fields the model has, renamed; absent or null ones keep the model's
    default (the same as 0.1's)."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"expected an object, got {type(spec).__name__}")
    return {new: spec[old] for old, new in names.items() if spec.get(old) is not None}


def _pool(data: Mapping[str, Any], persistence: Any) -> dict[str, Any]:
    pool = data["pool"]
    if not isinstance(pool, Mapping):
        raise ValueError("pool: expected an object")
    found: dict[str, Any] = {
        "name": data.get("poolName") or "pool",
        "protocol": pool.get("protocol", "TCP"),
        "method": pool.get("lbMethod", "ROUND_ROBIN"),
        "admin_state_up": pool.get("adminStateUp", True),
        "members": [
            {"name": member["name"], **_fields(member["spec"], _MEMBER)}
            for member in data.get("members") or ()
        ],
    }
    if data.get("monitor") is not None:
        monitor = _fields(data["monitor"], _MONITOR)
        found["monitor"] = {"name": data.get("monitorName") or "monitor", **monitor}
    if persistence is not None:
        found["persistence"] = {
            "type": persistence["type"],
            **({"cookie_name": persistence["cookieName"]} if persistence.get("cookieName") else {}),
        }
    return found


def tree_from_v0(data: Mapping[str, Any]) -> LoadBalancer:
    """The load balancer a 0.1 VIP file describes (raises ``ValueError``, ``KeyError`` or
    ``TypeError`` for a file that is not one)."""
    spec = data["spec"]
    if not isinstance(spec, Mapping):
        raise ValueError("spec: expected an object")
    listener: dict[str, Any] = {
        "name": data["name"],
        "port": spec["port"],
        "protocol": spec.get("protocol", "TCP"),
        "admin_state_up": spec.get("adminStateUp", True),
    }
    limit = spec.get("connectionLimit", -1)
    if limit != -1:
        listener["connection_limit"] = limit
    pools = []
    if data.get("pool") is not None:
        pools.append(_pool(data, spec.get("sessionPersistence")))
        listener["default_pool"] = pools[0]["name"]
    document = {
        "namespace": data["namespace"],
        "name": data["name"],
        "address": data["address"],
        "listeners": [listener],
        "pools": pools,
    }
    tree = from_document(LoadBalancer, document)
    assert isinstance(tree, LoadBalancer)
    return tree
