"""Helpers of the traffic layer: serve a tree and wait until the data plane shows it.

The kit's members speak HTTP; a TCP listener carries it unchanged, so the same requests test
TCP and HTTP listeners. A driver that declares neither cannot be tested this way (its traffic
tests skip, naming why).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from lbaas.drivers import model
from lbaas.drivers.model import LoadBalancer, MemberStatus, Protocol
from lbaas_conformance.backends import Member
from lbaas_conformance.client import spread, until
from lbaas_conformance.kit import Kit
from lbaas_conformance.trees import HasEndpoint


def protocol(kit: Kit) -> Protocol:
    """The listener protocol of traffic tests: TCP when declared, else HTTP."""
    if kit.declares("protocol.tcp"):
        return Protocol.TCP
    if kit.declares("protocol.http"):
        return Protocol.HTTP
    pytest.skip("the traffic tests need protocol.tcp or protocol.http")


def serve(
    kit: Kit,
    members: Sequence[HasEndpoint | model.Member],
    *,
    proto: Protocol | None = None,
    listener: dict[str, Any] | None = None,
    pools: Sequence[model.Pool] | None = None,
    wait: bool = True,
    **pool: Any,
) -> LoadBalancer:
    """Apply a tree of ``members`` (skipped when it asks for undeclared features) and wait
    until its listener answers."""
    lb = kit.trees.lb(
        *kit.slot(),
        members,
        protocol=proto or protocol(kit),
        listener=listener,
        pools=pools,
        **pool,
    )
    kit.require(lb)
    kit.apply(lb)
    if wait:
        kit.served(lb)
    return lb


def where(lb: LoadBalancer) -> tuple[str, int]:
    return lb.address, lb.listeners[0].port


def requests(lb: LoadBalancer, count: int, **kw: Any) -> Counter[str]:
    """Which member answered each of ``count`` requests to ``lb`` (``!...``: failures)."""
    return spread(*where(lb), count, **kw)


def only(lb: LoadBalancer, members: Sequence[Member], kit: Kit, what: str, count: int = 6) -> None:
    """Wait until ``count`` requests in a row all succeed and go to ``members`` only."""
    names = {m.name for m in members}
    until(
        lambda: set(requests(lb, count)) <= names,
        kit.device.timing.health,
        f"{what}: requests answered by {', '.join(sorted(names))} only",
        every=0.2,
    )


def reaches(lb: LoadBalancer, member: Member, kit: Kit, what: str) -> None:
    """Wait until some request is answered by ``member``."""
    until(
        lambda: requests(lb, 4)[member.name] > 0,
        kit.device.timing.health,
        f"{what}: requests reach {member.name}",
        every=0.2,
    )


def failures(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k.startswith("!")}


def marked_down(kit: Kit, lb: LoadBalancer, member: Member) -> None:
    """Wait until the device has taken ``member`` out after failed health checks: its status
    turns ERROR (``ops.member-status``), else the time its monitor needs, with a margin."""
    if kit.declares("ops.member-status"):
        until(
            lambda: (
                kit.member_statuses([lb]).get(lb.key, {}).get(member.name) == MemberStatus.ERROR
            ),
            kit.device.timing.health,
            f"{member.name} reported ERROR",
            every=0.2,
        )
        return
    monitors = [p.monitor for p in lb.pools if p.monitor is not None]
    assert monitors, f"{lb.key} has no monitor"
    time.sleep((monitors[0].max_retries_down + 1) * monitors[0].delay + 1)
