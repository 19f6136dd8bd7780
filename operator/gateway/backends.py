"""A route's backendRefs: resolved to Services and their endpoints, weighted (pure).

Each backendRef must name a Service (group ``""``, kind ``Service``: else ``InvalidKind``)
that exists and has the port it names (else ``BackendNotFound``), speaking the route's
transport (a UDPRoute's backends UDP, others TCP: else ``UnsupportedProtocol``); a Service in
another namespace needs a ReferenceGrant there (else ``RefNotPermitted``). Invalid backends
get no members; the route's ``ResolvedRefs`` condition names each problem.

The valid ones become the Members of the route's Pool, from the Services' EndpointSlices as
the Services controller reads them (:mod:`lbaas.generated.endpoints`). A backendRef's
``weight`` is the share of connections of its Service as a whole, so each of its endpoints
gets ``weight / endpoints``; these shares are scaled to member weights 1-256 (0: a weight 0
backend), and to 1 when all are equal (no ``member.weight`` feature needed then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lbaas.gateway.refs import permitted, route_source
from lbaas.gateway.spec import BackendRef, backend_refs, ref_of
from lbaas.gateway.world import World
from lbaas.generated.endpoints import endpoints, service_port
from lbaas.status import Cond

RESOLVED_REFS = "ResolvedRefs"
INVALID_KIND = "InvalidKind"
REF_NOT_PERMITTED = "RefNotPermitted"
BACKEND_NOT_FOUND = "BackendNotFound"
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
MAX_WEIGHT = 256


@dataclass(frozen=True)
class Backend:
    """A valid backendRef: its Service port (``spec.ports`` entry) and ready endpoints."""

    ref: BackendRef
    port: Mapping[str, Any]
    endpoints: tuple[tuple[str, int], ...]


def _problem(route: Mapping[str, Any], ref: BackendRef, world: World) -> tuple[str, str] | None:
    """(reason, message) of an invalid backendRef, None when valid."""
    me = ref_of(route)
    what = f"backendRef {ref.namespace}/{ref.name}"
    if (ref.group, ref.kind) != ("", "Service"):
        return INVALID_KIND, f"{what}: kind {ref.kind} of group {ref.group!r} (Services only)"
    if ref.namespace != me.namespace and not permitted(
        world.grants(ref.namespace),
        source=route_source(me.kind, me.namespace),
        target=("", "Service", ref.name),
    ):
        return REF_NOT_PERMITTED, (
            f"{what}: no ReferenceGrant in namespace {ref.namespace} lets {me.kind}s of"
            f" {me.namespace} refer to Service {ref.name}"
        )
    service = world.get("Service", ref.namespace, ref.name)
    if service is None:
        return BACKEND_NOT_FOUND, f"{what}: Service not found"
    port = service_port(service, ref.port or 0)
    if port is None:
        return BACKEND_NOT_FOUND, f"{what}: the Service has no port {ref.port}"
    want = "UDP" if me.kind == "UDPRoute" else "TCP"
    if (port.get("protocol") or "TCP") != want:
        return UNSUPPORTED_PROTOCOL, (
            f"{what}: port {ref.port} is {port.get('protocol')}, a {me.kind} needs {want}"
        )
    return None


def backend(route: Mapping[str, Any], ref: BackendRef, world: World) -> Backend | tuple[str, str]:
    """One backendRef of ``route``: its Service port and endpoints, or (reason, message)."""
    problem = _problem(route, ref, world)
    if problem is not None:
        return problem
    service = world.get("Service", ref.namespace, ref.name)
    port = service_port(service or {}, ref.port or 0) or {}
    slices = world.endpoint_slices(ref.namespace, ref.name)
    return Backend(ref, port, tuple(endpoints(slices, port, [])))


def resolve(route: Mapping[str, Any], world: World) -> tuple[list[Backend], Cond]:
    """The route's valid backends (of all its rules) and its ResolvedRefs condition."""
    found: list[Backend] = []
    problems: list[tuple[str, str]] = []
    for ref in backend_refs(route):
        got = backend(route, ref, world)
        if isinstance(got, Backend):
            found.append(got)
        else:
            problems.append(got)
    if problems:
        return found, Cond(RESOLVED_REFS, False, problems[0][0], "; ".join(m for _, m in problems))
    return found, Cond(RESOLVED_REFS, True, RESOLVED_REFS)


def member_weights(backends: Sequence[Backend]) -> dict[tuple[str, int], int]:
    """(address, port) → member weight (see the module docstring)."""
    shares: dict[tuple[str, int], Fraction] = {}
    for backend in backends:
        if not backend.endpoints:
            continue
        share = Fraction(backend.ref.weight, len(backend.endpoints))
        for endpoint in backend.endpoints:
            shares[endpoint] = shares.get(endpoint, Fraction(0)) + share
    top = max(shares.values(), default=Fraction(0))
    if top == 0:
        return {e: 0 for e in shares}
    if len(set(shares.values())) == 1:
        return {e: 1 for e in shares}
    return {e: 0 if s == 0 else max(1, round(MAX_WEIGHT * s / top)) for e, s in shares.items()}
