"""A deliberately reduced driver: the conformance kit's proof that it tells a driver's truth.

The HAProxy driver (as the registry serves it: through the contract-0 shim until it is
ported) behind a declaration of its own that

- declares fewer features than HAProxy has (no least connections, source IP, backups,
  persistence, limits, listener admin state, TCP monitors...): the kit must skip and list
  them;
- declares ``member.weight`` but implements it wrongly: every member is sent with weight 1
  (a vendor API that ignored the field). The kit's traffic test of weights must fail, and
  only it.

Entry point ``reduced`` (group ``lbaas.drivers``); the device config is HAProxy's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

from lbaas.drivers.contract import DeviceHandle, Drift, Driver, ProbeResult, Statuses
from lbaas.drivers.errors import DriverError
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.registry import adopt

DECLARED = frozenset(
    {
        "protocol.tcp",
        "protocol.http",
        "method.round-robin",
        "member.weight",  # declared, and wrong: see flattened()
        "member.admin-state",
        "pool.admin-state",
        "monitor.http",
        "ops.fencing",
        "ops.verify",
        "ops.orphans",
        "ops.member-status",
        "ops.hitless-members",
        "l7.multiple-pools",
    }
)


def flattened(lb: LoadBalancer) -> LoadBalancer:
    """``lb`` with every member's weight 1: the bug this driver exists to have."""
    pools = tuple(
        dataclasses.replace(p, members=tuple(dataclasses.replace(m, weight=1) for m in p.members))
        for p in lb.pools
    )
    return dataclasses.replace(lb, pools=pools)


class ReducedDriver(Driver):
    features: ClassVar[frozenset[str]] = DECLARED

    def __init__(self) -> None:
        self.inner = adopt("haproxy", HAProxyDriver())

    def validate_config(self, config: Mapping[str, Any]) -> None:
        self.inner.validate_config(config)

    def supports(self, lb: LoadBalancer, config: Mapping[str, Any]) -> str | None:
        return self.inner.supports(flattened(lb), config)

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        self.inner.apply(device, flattened(lb))

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        return self.inner.apply_many(device, [flattened(lb) for lb in lbs])

    def delete(self, device: DeviceHandle, key: str) -> None:
        self.inner.delete(device, key)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        return self.inner.probe(device)

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        return self.inner.member_statuses(device, [flattened(lb) for lb in lbs])

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        return self.inner.verify(device, flattened(lb))

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        return self.inner.orphans(device, expected)

    def watch(self, device: DeviceHandle, changed: Callable[[], None]) -> Callable[[], None]:
        return self.inner.watch(device, changed)

    def close(self) -> None:
        self.inner.close()
