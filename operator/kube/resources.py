"""The resources the operator reads and writes, and how their URLs are built."""

from __future__ import annotations

from dataclasses import dataclass

from lbaas import GROUP, VERSION


@dataclass(frozen=True)
class Resource:
    """One API resource: where it lives and whether objects have a namespace."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """``/apis/g/v[/namespaces/ns]/plural[/name[/sub]]`` (core: ``/api/v1/...``)."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        root += f"/{self.plural}"
        if name:
            root += f"/{name}"
            if sub:
                root += f"/{sub}"
        return root


VIPS = Resource(GROUP, VERSION, "vips", "VIP", True)
POOLS = Resource(GROUP, VERSION, "pools", "Pool", True)
MEMBERS = Resource(GROUP, VERSION, "members", "Member", True)
MONITORS = Resource(GROUP, VERSION, "healthmonitors", "HealthMonitor", True)
L7POLICIES = Resource(GROUP, VERSION, "l7policies", "L7Policy", True)
DEVICES = Resource(GROUP, VERSION, "devices", "Device", False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
EVENTS = Resource("", "v1", "events", "Event", True)
SERVICES = Resource("", "v1", "services", "Service", True)
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)

BY_KIND = {
    r.kind: r
    for r in (VIPS, POOLS, MEMBERS, MONITORS, L7POLICIES, DEVICES, NAMESPACES, SERVICES, LEASES)
}
TREE_KINDS = (VIPS, POOLS, MEMBERS, MONITORS, L7POLICIES)
