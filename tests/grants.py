"""Permissions in concrete namespaces: what API calls need (``apicalls.Call``) and what the
chart's rendered ClusterRoles and Roles give, so the two can be compared exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lbaas.kube import resources
from lbaas.kube.resources import Resource

if TYPE_CHECKING:
    from apicalls import Call

ROLES = ("controller", "agent")
CLUSTER_SCOPED = {
    r.plural for r in vars(resources).values() if isinstance(r, Resource) and not r.namespaced
}


@dataclass(frozen=True)
class Grant:
    """One permission in a concrete namespace, as needed by a call or given by a rule."""

    role: str
    group: str
    resource: str
    verb: str
    namespace: str | None  # None: cluster-scoped; "*": every namespace
    names: tuple[str, ...] = ()

    def key(self) -> tuple[str, str, str, str]:
        return self.role, self.group, self.resource, self.verb


def needed_grants(
    calls: set[Call], watched: list[str], secrets: list[str], release: str
) -> set[Grant]:
    """The grants ``calls`` need in concrete namespaces (``*``: every namespace)."""
    where: dict[str, list[str | None]] = {
        "cluster": [None],
        "release": [release],
        "watched": list(watched) or ["*"],
        "secrets": [release, *secrets],
    }
    return {
        Grant(c.role, c.group, c.resource, c.verb, ns, c.names)
        for c in calls
        for ns in where[c.where]
    }


def rendered_grants(docs: list[dict[str, Any]], release: str = "lbaas-operator") -> set[Grant]:
    """The grants of the chart's per-role ClusterRoles and Roles (``<release>-<role>``)."""
    out = set()
    for role in ROLES:
        name = f"{release}-{role}"
        for doc in docs:
            if doc.get("kind") not in ("ClusterRole", "Role") or doc["metadata"]["name"] != name:
                continue
            namespace = doc["metadata"].get("namespace")
            for rule in doc["rules"]:
                names = tuple(rule.get("resourceNames", ()))
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        scoped = resource.split("/")[0] in CLUSTER_SCOPED
                        ns = None if scoped else namespace or "*"
                        for verb in rule["verbs"]:
                            out.add(Grant(role, group, resource, verb, ns, names))
    return out


def covers(granted: Grant, wanted: Grant) -> bool:
    """``granted`` allows what ``wanted`` needs (a name-restricted grant only named calls)."""
    if granted.key() != wanted.key():
        return False
    if granted.namespace != wanted.namespace and not (
        granted.namespace == "*" and wanted.namespace is not None
    ):
        return False
    return not granted.names or (bool(wanted.names) and set(wanted.names) <= set(granted.names))
