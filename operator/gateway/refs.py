"""ReferenceGrants: which cross-namespace references the target namespace allows (pure).

Every cross-namespace reference of the Gateway API (a Route's backendRef to a Service of
another namespace, a Gateway's certificateRef to a Secret of another namespace) needs a
ReferenceGrant *in the target's namespace* naming the referring kind and namespace (``from``)
and the referred kind, optionally by name (``to``). No grant, no reference: and removing the
grant revokes it (the controller recomputes on every grant change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lbaas.gateway.spec import GROUP
from lbaas.views import spec_of


def permitted(
    grants: Iterable[Mapping[str, Any]],
    *,
    source: tuple[str, str, str],
    target: tuple[str, str, str],
) -> bool:
    """Whether a ReferenceGrant among ``grants`` (those of the target's namespace) lets
    ``source`` (group, kind, namespace) refer to ``target`` (group, kind, name)."""
    group, kind, namespace = source
    to_group, to_kind, to_name = target
    for grant in grants:
        spec = spec_of(grant)
        if not any(
            (f.get("group") or "") == group
            and f.get("kind") == kind
            and f.get("namespace") == namespace
            for f in spec.get("from") or ()
        ):
            continue
        for to in spec.get("to") or ():
            if (
                (to.get("group") or "") == to_group
                and to.get("kind") == to_kind
                and (not to.get("name") or to.get("name") == to_name)
            ):
                return True
    return False


def route_source(kind: str, namespace: str) -> tuple[str, str, str]:
    """A Route of ``kind`` in ``namespace`` as a grant's ``from`` names it."""
    return (GROUP, kind, namespace)
