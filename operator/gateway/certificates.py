"""An HTTPS listener's certificateRefs: which Secrets its VIP may name (pure).

An HTTPS listener (``tls.mode: Terminate``) becomes a ``TERMINATED_HTTPS`` VIP whose
``spec.tls.certificateRefs`` name the listener's Secrets; the agent that owns the VIP's device
reads them, checks them and serves them (docs/tls.md), and a Secret it cannot serve (missing,
malformed, a key that does not match) turns the VIP ``Error`` ``CertificateInvalid``, which the
listener reports as ``ResolvedRefs=False`` ``InvalidCertificateRef``. The controller itself
reads no Secret. What it checks here, before any VIP is written:

- a reference to anything but a core Secret: ``InvalidCertificateRef``;
- a Secret of another namespace without a ReferenceGrant there that lets Gateways of this
  namespace refer to it: ``RefNotPermitted``; with one: ``InvalidCertificateRef`` all the same,
  because a VIP names Secrets of its own namespace only (copy the Secret to the Gateway's).

A listener with no Secret left is not served (no VIP); the others are, with their valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbaas.gateway.refs import permitted
from lbaas.gateway.spec import GROUP, Listener
from lbaas.gateway.world import World
from lbaas.status import Cond

RESOLVED_REFS = "ResolvedRefs"
INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
REF_NOT_PERMITTED = "RefNotPermitted"


def _problem(ref: Mapping[str, Any], namespace: str, world: World | None) -> tuple[str, str] | None:
    name = str(ref.get("name"))
    where = str(ref.get("namespace") or namespace)
    group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Secret")
    if (group, kind) != ("", "Secret"):
        what = f"certificateRef {name}: a {kind} of group {group!r} (core Secrets only)"
        return INVALID_CERTIFICATE_REF, what
    if where == namespace:
        return None
    grants = world.grants(where) if world is not None else ()
    if not permitted(grants, source=(GROUP, "Gateway", namespace), target=("", "Secret", name)):
        return REF_NOT_PERMITTED, (
            f"certificateRef {where}/{name}: no ReferenceGrant in namespace {where} lets"
            f" Gateways of {namespace} refer to Secret {name}"
        )
    return INVALID_CERTIFICATE_REF, (
        f"certificateRef {where}/{name}: a Secret of another namespace cannot be served (a VIP"
        f" names Secrets of its own namespace): copy it to {namespace}"
    )


def certificates(
    listener: Listener, namespace: str, world: World | None
) -> tuple[tuple[str, ...], Cond | None]:
    """The names of the Secrets the listener's VIP may name, and ResolvedRefs=False naming
    every refused reference (None: all fine)."""
    names: list[str] = []
    problems: list[tuple[str, str]] = []
    for ref in listener.certificate_refs:
        problem = _problem(ref, namespace, world)
        if problem is not None:
            problems.append(problem)
        elif str(ref.get("name")) not in names:
            names.append(str(ref.get("name")))
    if not problems:
        return tuple(names), None
    message = "; ".join(m for _, m in problems)
    return tuple(names), Cond(RESOLVED_REFS, False, problems[0][0], message)
