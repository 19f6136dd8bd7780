"""Operational promises checked through driver calls: fencing, drift, orphans, member status."""

from __future__ import annotations

from typing import Any

import pytest

from lbaas.drivers.contract import Drift
from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer, MemberStatus, MonitorType
from lbaas_conformance.features import feature
from lbaas_conformance.kit import Kit
from lbaas_conformance.trees import monitor


def tree(kit: Kit, **pool: Any) -> LoadBalancer:
    lb = kit.trees.lb(*kit.slot(), kit.endpoints(2), **pool)
    kit.require(lb)
    return lb


@feature("ops.fencing")
def test_an_older_owner_is_refused(kit: Kit) -> None:
    """A call with fence N after one with N+1 raises StaleOwnerError; N+1 still works."""
    lb = tree(kit)
    kit.fence += 2
    kit.apply(lb)
    older = kit.handle(fence=kit.fence - 1, owner="a-paused-former-owner")
    for what, call in (
        ("apply", lambda: kit.driver.apply(older, lb)),
        ("delete", lambda: kit.driver.delete(older, lb.key)),
    ):
        with pytest.raises(DriverError) as refused:
            kit.call(call)
        assert refused.value.reason == Reason.STALE_OWNER, f"{what}: {refused.value!r}"
    kit.apply(lb)
    if kit.declares("ops.verify"):
        assert kit.verify(lb) == [], "the refused calls changed the device"


@feature("ops.verify")
def test_verify_finds_drift_and_apply_repairs_it(kit: Kit) -> None:
    lb = tree(kit)
    kit.apply(lb)
    assert kit.verify(lb) == [], "drift found right after an apply"
    kit.disturb(lb)
    found = kit.verify(lb)
    assert found, "verify found no drift after the device was disturbed"
    assert all(isinstance(d, Drift) and d.kind and d.message for d in found), found
    kit.apply(lb)
    assert kit.verify(lb) == [], "drift left after apply"


@feature("ops.orphans")
def test_orphans_are_the_keys_not_expected(kit: Kit) -> None:
    kept, left = tree(kit), tree(kit)
    kit.apply_all([kept, left])
    found = kit.orphans([kept.key])
    assert left.key in found and kept.key not in found, found
    found = kit.orphans([kept.key, left.key])
    assert left.key not in found and kept.key not in found, found


@feature("ops.member-status")
def test_member_status_for_every_monitored_member(kit: Kit) -> None:
    """Every member of a monitored pool has a status; the members of a pool without monitor
    are NO_MONITOR or left out (never ONLINE on a guess)."""
    kind = MonitorType.TCP if kit.declares("monitor.tcp") else MonitorType.HTTP
    watched = tree(kit, monitor=monitor(kind))
    plain = tree(kit)
    kit.apply_all([watched, plain])
    found = kit.member_statuses([watched, plain])
    assert watched.key in found, "no statuses for a monitored load balancer"
    names = {m.name for _, m in watched.members()}
    assert set(found[watched.key]) == names, found[watched.key]
    assert all(isinstance(s, MemberStatus) for s in found[watched.key].values())
    for name, status in found.get(plain.key, {}).items():
        assert status in (MemberStatus.NO_MONITOR, MemberStatus.UNKNOWN), (name, status)
