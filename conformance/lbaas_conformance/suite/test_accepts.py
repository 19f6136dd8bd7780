"""Each declared feature of a tree is accepted: a tree asking for it applies over what the
device held for its key, applies again (idempotent) and is in sync (``ops.verify``). The
contract-layer proof of a feature; the traffic layer then proves it works (``test_l4``...).

A sample is one function from the kit to a tree; adding one here is all a new feature's
contract test takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from lbaas.drivers.capabilities import required_features
from lbaas.drivers.model import (
    Action,
    ActionType,
    Header,
    HeaderChanges,
    L7Policy,
    LoadBalancer,
    Match,
    Method,
    MonitorType,
    PathMatch,
    PathMatchType,
    Persistence,
    PersistenceType,
    Protocol,
    Redirect,
    ValueMatch,
    ValueMatchType,
    WeightedPool,
)
from lbaas_conformance.features import mark, register
from lbaas_conformance.kit import Kit
from lbaas_conformance.trees import member, monitor

Sample = Callable[[Kit], LoadBalancer]


def _lb(kit: Kit, *, protocol: Protocol | None = None, **pool: Any) -> LoadBalancer:
    return kit.trees.lb(*kit.slot(), kit.endpoints(2), protocol=protocol, **pool)


def _members(kit: Kit, **changes: Any) -> LoadBalancer:
    """Two members, the second changed."""
    first, second = kit.endpoints(2)
    return kit.trees.lb(*kit.slot(), [member(first), member(second, **changes)])


def _listener(kit: Kit, **changes: Any) -> LoadBalancer:
    return kit.trees.lb(*kit.slot(), kit.endpoints(2), listener=changes)


def _two_listeners(kit: Kit) -> LoadBalancer:
    lb = _lb(kit)
    other = dataclasses.replace(lb.listeners[0], name=f"{lb.name}-2", port=kit.spare_port())
    return dataclasses.replace(lb, listeners=(lb.listeners[0], other))


def _http(kit: Kit, **pool: Any) -> LoadBalancer:
    return _lb(kit, protocol=Protocol.HTTP, **pool)


def _monitor_address(kit: Kit) -> LoadBalancer:
    first, second = kit.endpoints(2)
    return kit.trees.lb(
        *kit.slot(),
        [member(first), member(second, monitor_port=second.port + 1000)],
        monitor=monitor(MonitorType.TCP),
    )


def _policy(kit: Kit, match: Match | None = None, action: Action | None = None,
            **changes: Any) -> LoadBalancer:  # fmt: skip
    """An HTTP load balancer of two pools (``a`` the default) and one L7 policy: ``match``
    (every request) forwarding to ``b`` unless ``action`` says otherwise."""
    pools = (kit.trees.pool(kit.endpoints(1, "a"), name="a"),
             kit.trees.pool(kit.endpoints(1, "b"), name="b"))  # fmt: skip
    forward = Action(ActionType.FORWARD, pools=(WeightedPool("b"),))
    policy = L7Policy("p", 1, match or Match(), action or forward, **changes)
    return kit.trees.lb(
        *kit.slot(), protocol=Protocol.HTTP, pools=pools, listener={"policies": (policy,)}
    )


SAMPLES: dict[str, Sample] = {
    "protocol.tcp": lambda kit: _lb(kit, protocol=Protocol.TCP),
    "method.round-robin": lambda kit: _lb(kit, method=Method.ROUND_ROBIN),
    "method.least-connections": lambda kit: _lb(kit, method=Method.LEAST_CONNECTIONS),
    "method.source-ip": lambda kit: _lb(kit, method=Method.SOURCE_IP),
    "member.weight": lambda kit: _members(kit, weight=3),
    "member.backup": lambda kit: _members(kit, backup=True),
    "member.admin-state": lambda kit: _members(kit, admin_state_up=False),
    "member.monitor-address": _monitor_address,
    "pool.admin-state": lambda kit: _lb(kit, admin_state_up=False),
    "listener.connection-limit": lambda kit: _listener(kit, connection_limit=100),
    "listener.admin-state": lambda kit: _listener(kit, admin_state_up=False),
    "listener.multiple": _two_listeners,
    "monitor.tcp": lambda kit: _lb(kit, monitor=monitor(MonitorType.TCP)),
    "monitor.ping": lambda kit: _lb(kit, monitor=monitor(MonitorType.PING)),
    "persistence.source-ip": lambda kit: _lb(
        kit, persistence=Persistence(PersistenceType.SOURCE_IP)
    ),
    "protocol.http": lambda kit: _http(kit),
    "monitor.http": lambda kit: _http(
        kit, monitor=monitor(MonitorType.HTTP, expected_codes="200-204")
    ),
    "monitor.https": lambda kit: _http(kit, monitor=monitor(MonitorType.HTTPS)),
    "persistence.http-cookie": lambda kit: _http(
        kit, persistence=Persistence(PersistenceType.HTTP_COOKIE, "SRV")
    ),
    "persistence.app-cookie": lambda kit: _http(
        kit, persistence=Persistence(PersistenceType.APP_COOKIE, "JSESSIONID")
    ),
    "http.forwarded-headers": lambda kit: kit.trees.lb(
        *kit.slot(),
        kit.endpoints(2),
        protocol=Protocol.HTTP,
        listener={"forwarded_headers": True},
    ),
    # L7 (issue 20): one policy asking for the feature (and for l7.multiple-pools)
    "l7.host": lambda kit: _policy(kit, Match(hostnames=("a.example.com", "*.example.org"))),
    "l7.path": lambda kit: _policy(kit, Match(path=PathMatch(PathMatchType.PREFIX, "/api"))),
    "l7.header": lambda kit: _policy(kit, Match(headers=(ValueMatch("X-Canary", "yes"),))),
    "l7.method": lambda kit: _policy(kit, Match(method="POST")),
    "l7.query": lambda kit: _policy(kit, Match(query_params=(ValueMatch("v", "2"),))),
    "l7.regex": lambda kit: _policy(
        kit, Match(headers=(ValueMatch("X-V", "^v[0-9]+$", ValueMatchType.REGEX),))
    ),
    "l7.redirect": lambda kit: _policy(
        kit, action=Action(ActionType.REDIRECT, redirect=Redirect(scheme="https"))
    ),
    "l7.reject": lambda kit: _policy(kit, action=Action(ActionType.REJECT, status_code=403)),
    "l7.header-modifier": lambda kit: _policy(
        kit, request_headers=HeaderChanges(set=(Header("X-Set", "1"),), remove=("X-Drop",))
    ),
    "l7.weighted-split": lambda kit: _policy(
        kit, action=Action(ActionType.FORWARD, pools=(WeightedPool("a", 1), WeightedPool("b", 3)))
    ),
}


for _name in SAMPLES:
    register(_name, f"test_accepts::test_a_tree_asking_for_it_is_accepted[{_name}]")


@pytest.mark.parametrize("name", [pytest.param(n, marks=mark(n), id=n) for n in SAMPLES])
def test_a_tree_asking_for_it_is_accepted(kit: Kit, name: str) -> None:
    lb = SAMPLES[name](kit)
    assert name in required_features(lb), f"the kit's sample for {name} does not ask for it"
    kit.require(lb)
    kit.apply(lb)
    kit.apply(lb)
    if kit.declares("ops.verify"):
        assert kit.verify(lb) == [], f"verify finds drift in a tree asking for {name}"
