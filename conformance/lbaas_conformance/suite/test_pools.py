"""Several pools behind one load balancer: the listener's default pool decides."""

from __future__ import annotations

import dataclasses

from lbaas.drivers.model import LoadBalancer
from lbaas_conformance.backends import Backends
from lbaas_conformance.features import TRAFFIC, feature
from lbaas_conformance.kit import Kit
from lbaas_conformance.traffic import only, serve


def switched(lb: LoadBalancer, pool: str) -> LoadBalancer:
    listener = dataclasses.replace(lb.listeners[0], default_pool=pool)
    return dataclasses.replace(lb, listeners=(listener,))


@feature("l7.multiple-pools")
def test_two_pools_are_stored_and_switched(kit: Kit) -> None:
    blue, green = kit.endpoints(1, "blue"), kit.endpoints(1, "green")
    pools = (kit.trees.pool(blue, name="blue"), kit.trees.pool(green, name="green"))
    lb = kit.trees.lb(*kit.slot(), pools=pools)
    kit.require(lb)
    kit.apply(lb)
    kit.apply(switched(lb, "green"))
    if kit.declares("ops.verify"):
        assert kit.verify(switched(lb, "green")) == []
        assert kit.verify(lb), "verify must see the default pool differ"


@feature("l7.multiple-pools", layer=TRAFFIC)
def test_switching_the_default_pool_moves_the_traffic(kit: Kit, backends: Backends) -> None:
    (blue,), (green,) = backends.http(1, "blue"), backends.http(1, "green")
    pools = (kit.trees.pool([blue], name="blue"), kit.trees.pool([green], name="green"))
    lb = serve(kit, [], pools=pools)
    only(lb, [blue], kit, "default pool blue")
    kit.apply(switched(lb, "green"))
    only(lb, [green], kit, "default pool green")
