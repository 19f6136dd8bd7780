"""What a Gateway and its routes are told: their statuses, as the Gateway API specifies (pure).

Every condition carries the object's ``metadata.generation`` as ``observedGeneration``; a
condition's ``lastTransitionTime`` moves only when its status does. The Gateway gets
``Accepted`` (:func:`lbaas.gateway.translate.accepted`), ``Programmed`` (from its VIPs'
phases), ``ResolvedRefs`` (its listeners' summary), ``addresses`` (the address its VIPs
share, once bound) and, per listener, ``Accepted``, ``Programmed``, ``ResolvedRefs``,
``Conflicted``, ``supportedKinds`` and ``attachedRoutes``. A route gets one entry in
``status.parents`` per parentRef naming a Gateway of this operator (entries of other
controllers are kept as they are), with ``Accepted`` and ``ResolvedRefs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from lbaas.gateway.attach import Attachment
from lbaas.gateway.listeners import Verdict
from lbaas.gateway.spec import CONTROLLER_NAME, GROUP
from lbaas.generated.sharing import Placement
from lbaas.status import Cond, condition_entries
from lbaas.views import meta_of, status_of

PROGRAMMED = "Programmed"
PENDING = "Pending"
INVALID = "Invalid"
NO_RESOURCES = "NoResources"
ADDRESS_NOT_ASSIGNED = "AddressNotAssigned"
ADDRESS_NOT_USABLE = "AddressNotUsable"
PORT_UNAVAILABLE = "PortUnavailable"
RESOLVED_REFS = "ResolvedRefs"
LISTENERS_NOT_RESOLVED = "ListenersNotResolved"

_NO_RESOURCES = {"NoEligibleDevice", "QuotaExceeded"}
_ADDRESS = {"AddressNotAllowed", "AddressInUse", "AddressNotAvailable"}
_PORT = {"AddressInUse", "PortNotPermitted"}
CERTIFICATE_INVALID = "CertificateInvalid"
INVALID_CERTIFICATE_REF = "InvalidCertificateRef"


def _vip_state(vip: Mapping[str, Any] | None, name: str, policy_errors: Sequence[str] = ()) -> Cond:
    """The Programmed condition of a listener served by VIP ``name`` (``policy_errors``: its
    L7Policies in Error, as ``L7Policy <name>: <reason>: <message>``)."""
    if vip is None:
        return Cond(PROGRAMMED, False, PENDING, f"VIP {name} waits for the Gateway's address")
    status = status_of(vip)
    phase, reason = status.get("phase"), str(status.get("reason") or "")
    current = status.get("observedGeneration") == meta_of(vip).get("generation")
    if phase == "Active" and current and policy_errors:
        return Cond(PROGRAMMED, False, INVALID, "; ".join(policy_errors))
    if phase == "Active" and current:
        return Cond(PROGRAMMED, True, PROGRAMMED)
    if phase == "Error":
        return Cond(
            PROGRAMMED,
            False,
            INVALID,
            f"VIP {name}: {reason}: {status.get('message') or ''}".rstrip(": "),
        )
    return Cond(PROGRAMMED, False, PENDING, f"VIP {name}: {phase or 'new'} {reason}".rstrip())


def listener_entries(
    gateway: Mapping[str, Any],
    verdicts: Sequence[Verdict],
    vips: Mapping[str, Mapping[str, Any]],
    attached: Mapping[str, int],
    policy_errors: Mapping[str, Sequence[str]],
) -> list[dict[str, Any]]:
    generation = meta_of(gateway).get("generation")
    before = {str(e.get("name")): e for e in status_of(gateway).get("listeners") or ()}
    out = []
    for verdict in verdicts:
        name = verdict.listener.name
        accepted = verdict.accepted
        resolved = verdict.resolved
        if verdict.vip is None:
            why = "it is not accepted" if not accepted.ok else "no certificate can be served"
            programmed = Cond(PROGRAMMED, False, INVALID, why)
        else:
            errors = policy_errors.get(verdict.vip, ())
            programmed = _vip_state(vips.get(verdict.vip), verdict.vip, errors)
            reason = str(status_of(vips.get(verdict.vip)).get("reason") or "")
            if not programmed.ok and reason in _PORT:
                accepted = replace(
                    accepted, ok=False, reason=PORT_UNAVAILABLE, message=programmed.message
                )
            if reason == CERTIFICATE_INVALID:  # the agent could not serve a Secret
                resolved = Cond(RESOLVED_REFS, False, INVALID_CERTIFICATE_REF, programmed.message)
        conds = [accepted, programmed, resolved, verdict.conflicted]
        previous = (before.get(name) or {}).get("conditions") or []
        out.append(
            {
                "name": name,
                "supportedKinds": [{"group": GROUP, "kind": k} for k in verdict.kinds],
                "attachedRoutes": attached.get(name, 0),
                "conditions": condition_entries(previous, conds, generation),
            }
        )
    return out


def programmed(
    accepted: Cond,
    verdicts: Sequence[Verdict],
    vips: Mapping[str, Mapping[str, Any]],
    placement: Placement | None,
    problems: Sequence[str],
    policy_errors: Mapping[str, Sequence[str]],
) -> Cond:
    """The Gateway's Programmed condition."""
    if not accepted.ok:
        return Cond(PROGRAMMED, False, INVALID, "the Gateway is not accepted")
    if problems:
        return Cond(PROGRAMMED, False, INVALID, "; ".join(problems))
    names = sorted({v.vip for v in verdicts if v.vip is not None})
    states = {name: _vip_state(vips.get(name), name, policy_errors.get(name, ())) for name in names}
    for name in names:
        reason = str(status_of(vips.get(name)).get("reason") or "")
        if status_of(vips.get(name)).get("phase") == "Error" and reason in _NO_RESOURCES:
            return Cond(PROGRAMMED, False, NO_RESOURCES, states[name].message)
        if status_of(vips.get(name)).get("phase") == "Error" and reason in _ADDRESS:
            return Cond(PROGRAMMED, False, ADDRESS_NOT_USABLE, states[name].message)
    if placement is None:
        return Cond(PROGRAMMED, False, ADDRESS_NOT_ASSIGNED, "no address allocated yet")
    failed = [c for c in states.values() if not c.ok]
    if failed:
        return replace(failed[0], message="; ".join(c.message for c in failed))
    return Cond(PROGRAMMED, True, PROGRAMMED, f"served on {placement.address}")


def gateway_status(
    gateway: Mapping[str, Any],
    *,
    accepted: Cond,
    verdicts: Sequence[Verdict],
    vips: Mapping[str, Mapping[str, Any]],
    attached: Mapping[str, int],
    placement: Placement | None,
    problems: Sequence[str] = (),
    policy_errors: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The status fields this operator writes on a Gateway (None removes ``addresses``)."""
    policy_errors = policy_errors or {}
    listeners = listener_entries(gateway, verdicts, vips, attached, policy_errors)
    unresolved = [v.listener.name for v in verdicts if not v.resolved.ok]
    resolved = (
        Cond(
            RESOLVED_REFS,
            False,
            LISTENERS_NOT_RESOLVED,
            f"listeners {', '.join(unresolved)} have unresolved references",
        )
        if unresolved
        else Cond(RESOLVED_REFS, True, RESOLVED_REFS)
    )
    state = programmed(accepted, verdicts, vips, placement, problems, policy_errors)
    conds = [accepted, state, resolved]
    previous = status_of(gateway).get("conditions") or []
    return {
        "conditions": condition_entries(previous, conds, meta_of(gateway).get("generation")),
        "listeners": listeners,
        "addresses": [{"type": "IPAddress", "value": placement.address}]
        if placement is not None and accepted.ok
        else None,
    }


def parent_entry(
    route: Mapping[str, Any], attachment: Attachment, conditions: Sequence[Cond]
) -> dict[str, Any]:
    """One ``status.parents`` entry of a route: ``Accepted``, ``ResolvedRefs`` (and
    ``PartiallyInvalid`` when some rules are dropped)."""
    before: Mapping[str, Any] = next(
        (
            p
            for p in status_of(route).get("parents") or ()
            if p.get("controllerName") == CONTROLLER_NAME
            and _same_parent(p.get("parentRef") or {}, attachment.parent.raw, route)
        ),
        {},
    )
    entries = condition_entries(
        before.get("conditions") or [], list(conditions), meta_of(route).get("generation")
    )
    return {
        "parentRef": dict(attachment.parent.raw),
        "controllerName": CONTROLLER_NAME,
        "conditions": entries,
    }


def _same_parent(a: Mapping[str, Any], b: Mapping[str, Any], route: Mapping[str, Any]) -> bool:
    namespace = meta_of(route).get("namespace")

    def key(p: Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            p.get("group", GROUP),
            p.get("kind") or "Gateway",
            p.get("namespace") or namespace,
            p.get("name"),
            p.get("sectionName"),
            p.get("port"),
        )

    return key(a) == key(b)


def route_parents(route: Mapping[str, Any], ours: Sequence[dict[str, Any]]) -> list[Any]:
    """``status.parents``: other controllers' entries as they are, then ours (``ours`` for
    the parentRefs that name our Gateways; our entries for other parents are dropped)."""
    kept = [
        p
        for p in status_of(route).get("parents") or ()
        if p.get("controllerName") != CONTROLLER_NAME
    ]
    return kept + list(ours)
