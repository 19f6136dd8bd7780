"""Several VIPs on one address: a Service's ports, a Gateway's listeners (pure).

The binder allocates an address per VIP, so only the first VIP of a group (the *primary*) is
created without one; once a VIP of the group is bound, that address and Device (the
*placement*) are given to every other VIP (``address`` and ``deviceRef``): the others follow,
and a VIP that replaces the primary (its port changed) keeps the group's address. An address
asked for explicitly (an annotation, a Gateway's ``spec.addresses``) needs no such wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbaas.views import is_deleting, meta_of, spec_of, status_of


@dataclass(frozen=True)
class Placement:
    """Where the primary VIP was bound: the address and Device the others share."""

    address: str
    device: str


def placement_of(vips: Iterable[Mapping[str, Any]], primary: str) -> Placement | None:
    """The address and Device a group of VIPs shares: those of a bound VIP, the one named
    ``primary`` first, VIPs being deleted last (one being replaced still holds the address)."""
    bound = [v for v in vips if status_of(v).get("address") and status_of(v).get("device")]
    bound.sort(
        key=lambda v: (
            is_deleting(v),
            meta_of(v).get("name") != primary,
            str(meta_of(v).get("name")),
        )
    )
    if not bound:
        return None
    status = status_of(bound[0])
    return Placement(str(status["address"]), str(status["device"]))


def where(
    *,
    primary: bool,
    existing: Mapping[str, Any] | None,
    address: str | None,
    device: str | None,
    placement: Placement | None,
) -> tuple[str | None, str | None] | None:
    """(address, deviceRef) of one VIP of the group; None while it must wait for the primary.

    ``address``/``device``: what the source asks for explicitly. A VIP that was given its
    address by the binder keeps ``address`` unset (its status holds it); one created with an
    explicit address keeps it, so that its spec never flips."""
    if address:
        return address, device
    spec, status = spec_of(existing), status_of(existing)
    if placement is not None:
        if (
            existing is not None
            and not spec.get("address")
            and status.get("address") == placement.address
        ):
            return None, device
        return placement.address, placement.device
    if spec.get("address"):
        return str(spec["address"]), spec.get("deviceRef") or device
    return (None, device) if primary else None
