"""The contract every driver keeps, whatever it declares (driver calls only).

Idempotent whole-tree apply (twice, and after a call cut short by its deadline), ``apply_many``
outcomes independent per key, ``delete`` of what exists and of what does not, a ready probe,
a new driver object picking up a device it did not configure, and the call deadline.
"""

from __future__ import annotations

import dataclasses
import time

from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer
from lbaas_conformance.features import CONTRACT, feature
from lbaas_conformance.kit import Kit, load_driver


def tree(kit: Kit, members: int = 2) -> LoadBalancer:
    lb = kit.trees.lb(*kit.slot(), kit.endpoints(members))
    kit.require(lb)
    return lb


def in_sync(kit: Kit, lb: LoadBalancer) -> None:
    """verify says in sync, when the driver declares it can tell."""
    if kit.declares("ops.verify"):
        assert kit.verify(lb) == [], f"verify finds drift right after applying {lb.key}"


@feature(CONTRACT)
def test_probe_reports_ready(kit: Kit) -> None:
    found = kit.probe()
    assert found.ready, f"probe: not ready: {found.message}"
    assert isinstance(found.message, str)


@feature(CONTRACT)
def test_apply_twice_is_idempotent(kit: Kit) -> None:
    lb = tree(kit)
    kit.apply(lb)
    in_sync(kit, lb)
    kit.apply(lb)
    in_sync(kit, lb)


@feature(CONTRACT)
def test_apply_converges_after_a_call_cut_short(kit: Kit) -> None:
    """A change interrupted by a tiny deadline, then applied again, converges."""
    first = tree(kit, members=2)
    kit.apply(first)
    changed = dataclasses.replace(
        first, pools=(dataclasses.replace(first.pools[0], members=first.pools[0].members[:1]),)
    )
    started = time.monotonic()
    try:
        kit.call(lambda: kit.driver.apply(kit.handle(), changed), seconds=0.001)
    except DriverError as exc:
        assert exc.retryable, f"a call cut by its deadline must be retryable: {exc}"
    assert time.monotonic() - started < 0.001 + kit.device.timing.slack, "deadline overrun"
    kit.apply(changed)
    in_sync(kit, changed)
    kit.apply(changed)
    in_sync(kit, changed)


@feature(CONTRACT)
def test_apply_many_outcomes_are_independent(kit: Kit) -> None:
    """One tree of a batch asking for another's address:port fails alone."""
    taken = tree(kit)
    kit.apply(taken)
    good = [tree(kit), tree(kit)]
    clash = kit.trees.lb(kit.slot()[0], (taken.address, taken.listeners[0].port), kit.endpoints(2))
    outcome = kit.apply_many([good[0], clash, good[1]])
    assert set(outcome) == {good[0].key, clash.key, good[1].key}, "one outcome per key"
    assert outcome[good[0].key] is None and outcome[good[1].key] is None, outcome
    error = outcome[clash.key]
    assert isinstance(error, DriverError), "a tree on another's address:port must be refused"
    assert not error.retryable, f"retrying will not free the port: {error!r}"
    for lb in (taken, *good):
        in_sync(kit, lb)


@feature(CONTRACT)
def test_delete_what_exists_and_what_does_not(kit: Kit) -> None:
    lb = tree(kit)
    kit.apply(lb)
    kit.delete(lb.key)
    kit.delete(lb.key)  # absent now
    kit.delete(f"{lb.namespace}/never-applied")
    if kit.declares("ops.verify"):
        assert kit.verify(lb), "verify must see a deleted tree as missing"
    if kit.declares("ops.orphans"):
        assert lb.key not in kit.orphans([]), "the deleted tree is still on the device"


@feature(CONTRACT)
def test_a_new_driver_object_picks_up_the_device(kit: Kit) -> None:
    """After a restart (a new registry, a new driver object), the device is in sync and a
    second apply is idempotent."""
    lb = tree(kit)
    kit.apply(lb)
    fresh = load_driver(kit.driver_name)
    assert fresh is not kit.driver
    try:
        if kit.declares("ops.verify"):
            assert kit.verify(lb, driver=fresh) == [], "a new driver object finds drift"
        kit.apply(lb, driver=fresh)
        if kit.declares("ops.verify"):
            assert kit.verify(lb, driver=fresh) == []
        assert kit.call(lambda: fresh.probe(kit.handle())).ready
    finally:
        fresh.close()
    kit.apply(lb)  # the first object still works after the other closed


@feature(CONTRACT)
def test_the_call_deadline_is_honoured(kit: Kit) -> None:
    """A batch under a short deadline returns (each tree done or deferred) or raises
    DriverTimeout, within the deadline and some slack; then it converges."""
    lbs = [tree(kit) for _ in range(4)]
    deadline = 0.05
    started = time.monotonic()
    try:
        outcome = kit.apply_many(lbs, seconds=deadline)
    except DriverError as exc:
        assert exc.reason == Reason.DRIVER_TIMEOUT, f"expected DriverTimeout, got {exc!r}"
    else:
        assert set(outcome) == {lb.key for lb in lbs}
        for key, error in outcome.items():
            assert error is None or error.retryable, f"{key}: {error!r}"
    took = time.monotonic() - started
    assert took <= deadline + kit.device.timing.slack, f"returned after {took:.2f} s"
    kit.apply_all(lbs)
    for lb in lbs:
        in_sync(kit, lb)
