"""The HAProxy driver on the driver data model: several pools per load balancer (a backend
each), the names it gives and reads back, the features it declares and refuses, member
statuses per pool, and the VIP files of the 0.1 driver read after an upgrade."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from lbaas.drivers.capabilities import FEATURES as VOCABULARY
from lbaas.drivers.capabilities import required_features
from lbaas.drivers.errors import UnsupportedError
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.driver import lb_statuses
from lbaas.drivers.haproxy.features import FEATURES
from lbaas.drivers.haproxy.names import backend_name, keys_in, proxy_key
from lbaas.drivers.haproxy.render import fragment_servers, render_vip
from lbaas.drivers.haproxy.runtime import ServerState
from lbaas.drivers.haproxy.store import dump_tree, load_tree
from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import (
    Action,
    ActionType,
    BackendTLS,
    Certificate,
    HealthMonitor,
    L7Policy,
    Listener,
    ListenerTLS,
    LoadBalancer,
    Match,
    Member,
    MemberStatus,
    Method,
    MonitorType,
    PathMatch,
    PathMatchType,
    Persistence,
    PersistenceType,
    Pool,
    Protocol,
    Sensitive,
    WeightedPool,
)


def two_pools(default: str | None = "blue", **listener: Any) -> LoadBalancer:
    """A listener and two pools: ``blue`` (two members, HTTP check) and ``green`` (one
    member, least connections, APP_COOKIE persistence)."""
    listener.setdefault("protocol", Protocol.HTTP)
    return LoadBalancer(
        "shop",
        "web",
        "192.0.2.10",
        (Listener("web", 80, default_pool=default, **listener),),
        (
            Pool(
                "blue",
                members=(Member("b1", "10.0.0.1", 80), Member("b2", "10.0.0.2", 80, weight=2)),
                monitor=HealthMonitor("hm", MonitorType.HTTP, url_path="/healthz"),
            ),
            Pool(
                "green",
                method=Method.LEAST_CONNECTIONS,
                members=(Member("g1", "10.0.1.1", 80),),
                persistence=Persistence(PersistenceType.APP_COOKIE, "SID"),
            ),
        ),
    )


def sections(text: str) -> dict[str, list[str]]:
    """Section header → its lines (without indentation)."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines()[1:]:
        if line and not line.startswith(" "):
            current = found.setdefault(line, [])
        elif line.strip():
            current.append(line.strip())
    return found


# -- several pools ----------------------------------------------------------------------------


def test_each_pool_is_a_backend_and_the_listener_uses_its_default_pool() -> None:
    lb = two_pools()
    fragment = render_vip(lb)
    found = sections(fragment.text)
    assert list(found) == [
        "frontend fe_shop__web__web",
        "backend be_shop__web__blue",
        "backend be_shop__web__green",
    ]
    assert "default_backend be_shop__web__blue" in found["frontend fe_shop__web__web"]
    blue, green = found["backend be_shop__web__blue"], found["backend be_shop__web__green"]
    assert "balance roundrobin" in blue and "option httpchk GET /healthz" in blue
    assert "server b2 10.0.0.2:80 check inter 5s rise 3 fall 3 weight 2" in blue
    assert "balance leastconn" in green and "stick match req.cook(SID)" in green
    assert "server g1 10.0.1.1:80 weight 1" in green
    assert not any("check" in line for line in green)  # blue's monitor is blue's alone
    assert [b.name for b in fragment.backends] == ["be_shop__web__blue", "be_shop__web__green"]
    assert [f.backend for f in fragment.frontends] == ["be_shop__web__blue"]
    assert fragment_servers(fragment.text) == {
        "be_shop__web__blue": {
            "b1": "10.0.0.1:80 check inter 5s rise 3 fall 3",
            "b2": "10.0.0.2:80 check inter 5s rise 3 fall 3",
        },
        "be_shop__web__green": {"g1": "10.0.1.1:80"},
    }


def test_a_pool_no_listener_uses_takes_the_listeners_mode() -> None:
    """Backends must have their frontend's mode: an unused TCP pool of an HTTP listener is an
    http backend (so a later switch of the default pool changes no mode)."""
    lb = two_pools()
    lb = replace(lb, pools=(lb.pools[0], replace(lb.pools[1], protocol=Protocol.TCP)))
    assert "mode http" in sections(render_vip(lb).text)["backend be_shop__web__green"]


def test_switching_the_default_pool_is_a_reload_and_nothing_else_changes() -> None:
    blue, green = render_vip(two_pools("blue")), render_vip(two_pools("green"))
    assert blue.structure != green.structure
    assert blue.backends == green.backends
    assert green.frontends[0].backend == "be_shop__web__green"
    nothing = render_vip(two_pools(None))
    assert nothing.frontends[0].backend is None and "default_backend" not in nothing.text
    assert nothing.structure not in (blue.structure, green.structure)


def test_member_changes_in_the_other_pool_are_runtime_changes() -> None:
    """The structure leaves out every dynamic backend's servers: adding, removing, weighing a
    member of a pool the listener does not use, or taking that pool down, needs no reload."""
    lb = two_pools("blue")
    blue, green = lb.pools
    grown = replace(green, members=(*green.members, Member("g2", "10.0.1.2", 80, weight=5)))
    changes = [
        replace(lb, pools=(blue, grown)),
        replace(lb, pools=(blue, replace(green, members=()))),
        replace(lb, pools=(blue, replace(green, admin_state_up=False))),
        replace(lb, pools=(replace(blue, admin_state_up=False), green)),
    ]
    before = render_vip(lb)
    for changed in changes:
        after = render_vip(changed)
        assert after.structure == before.structure, changed
        assert after.text != before.text
    assert [s.name for s in render_vip(changes[0]).backends[1].servers] == ["g1", "g2"]
    assert render_vip(changes[2]).backends[1].servers == ()


def test_a_pool_added_or_removed_changes_the_structure() -> None:
    lb = two_pools()
    assert render_vip(replace(lb, pools=lb.pools[:1])).structure != render_vip(lb).structure


@pytest.mark.parametrize(
    "broken",
    [
        lambda lb: replace(lb, pools=(lb.pools[0], replace(lb.pools[1], name="blue"))),
        lambda lb: replace(
            lb, pools=(lb.pools[0], replace(lb.pools[1], members=(Member("b1", "10.0.1.1", 80),)))
        ),
        lambda lb: replace(lb, listeners=(replace(lb.listeners[0], default_pool="red"),)),
    ],
    ids=["pool name twice", "member name twice", "no such default pool"],
)
def test_names_must_be_unique_and_resolve(broken: Any) -> None:
    with pytest.raises(UnsafeValueError):
        render_vip(broken(two_pools()))


# -- names ------------------------------------------------------------------------------------


def test_proxy_names_read_back_as_keys() -> None:
    lb = two_pools()
    fragment = render_vip(lb)
    names = [f.name for f in fragment.frontends] + [b.name for b in fragment.backends]
    assert {proxy_key(name) for name in names} == {"shop/web"}
    assert proxy_key("be_shop__web") == "shop/web"  # the 0.1 driver's
    for other in ("stats", "be_x", "fe___y", "be_a__b__c__d", "xx_a__b"):
        assert proxy_key(other) is None, other
    assert keys_in(f"'server {backend_name(lb, 'p.1')}/m' and fe_a-b__c.d__e") == {
        "shop/web",
        "a-b/c.d",
    }


# -- features ---------------------------------------------------------------------------------


def test_features_are_in_the_vocabulary_and_a_tree_of_them_renders() -> None:
    assert set(VOCABULARY) >= FEATURES
    assert HAProxyDriver().capabilities({}) == FEATURES
    assert required_features(two_pools()) <= FEATURES
    assert not {f for f in FEATURES if f.startswith("tls.")}
    assert {f for f in VOCABULARY if f.startswith("l7.")} <= FEATURES  # issue 20
    assert "http.forwarded-headers" in FEATURES
    assert {"protocol.udp", "listener.multiple"}.isdisjoint(FEATURES)


def _certificate() -> Certificate:
    return Certificate("cert", "-----BEGIN CERTIFICATE-----", Sensitive("key"))


def _asks(feature: str) -> LoadBalancer:
    lb = two_pools()
    listener, (blue, green) = lb.listeners[0], lb.pools
    forward = Action(ActionType.FORWARD, pools=(WeightedPool("green"),))
    by_path = L7Policy("p", 1, Match(path=PathMatch(PathMatchType.PREFIX, "/api")), forward)
    return {
        "tls.terminate": replace(
            lb,
            listeners=(
                replace(
                    listener, protocol=Protocol.TERMINATED_HTTPS, tls=ListenerTLS((_certificate(),))
                ),
            ),
        ),
        "tls.backend": replace(lb, pools=(replace(blue, tls=BackendTLS()), green)),
        "l7.path": replace(lb, listeners=(replace(listener, policies=(by_path,)),)),
        "protocol.udp": replace(lb, listeners=(replace(listener, protocol=Protocol.UDP),)),
        "listener.multiple": replace(
            lb, listeners=(listener, replace(listener, name="b", port=81))
        ),
        "http.forwarded-headers": replace(
            lb, listeners=(replace(listener, forwarded_headers=True),)
        ),
    }[feature]


@pytest.mark.parametrize(
    "feature",
    [
        "tls.terminate",
        "tls.backend",
        "protocol.udp",
        "listener.multiple",
    ],
)
def test_a_tree_asking_for_a_feature_the_driver_lacks_is_refused_naming_it(feature: str) -> None:
    with pytest.raises(UnsupportedError) as err:
        render_vip(_asks(feature))
    assert err.value.feature == feature and not err.value.retryable
    assert feature in err.value.user_message


def test_supports_keeps_its_own_checks_and_never_raises() -> None:
    driver = HAProxyDriver()
    assert driver.supports(two_pools(), {}) is None
    long = replace(two_pools(), name="n" * 230)
    assert "at most 228" in (driver.supports(long, {}) or "")
    lb = two_pools(protocol=Protocol.TCP)
    assert "needs protocol HTTP" in (driver.supports(lb, {}) or "")
    # What the scheduler asks before an address is known.
    probe = LoadBalancer("shop", "web", "", (Listener("web", 80),))
    assert driver.supports(probe, {}) is None
    garbage = replace(lb, listeners=(replace(lb.listeners[0], protocol="SCTP"),))
    assert "cannot read" in (driver.supports(garbage, {}) or "")  # type: ignore[arg-type]


# -- member statuses --------------------------------------------------------------------------


def _running(backend: str, name: str, op: int = 2, check: int = 6) -> ServerState:
    return ServerState(backend, name, "10.0.0.1", 80, op, 0, 1, check)


def test_member_statuses_come_from_each_pools_backend() -> None:
    lb = two_pools()
    running = {
        "be_shop__web__blue": {
            "b1": _running("be_shop__web__blue", "b1"),
            "b2": _running("be_shop__web__blue", "b2", op=0),
        },
        "be_shop__web__green": {"g1": _running("be_shop__web__green", "g1", check=0)},
    }
    assert lb_statuses(lb, running) == {
        "b1": MemberStatus.ONLINE,
        "b2": MemberStatus.ERROR,
        "g1": MemberStatus.NO_MONITOR,
    }
    down = replace(lb, pools=(lb.pools[0], replace(lb.pools[1], admin_state_up=False)))
    assert lb_statuses(down, {"be_shop__web__blue": running["be_shop__web__blue"]}) == {
        "b1": MemberStatus.ONLINE,
        "b2": MemberStatus.ERROR,
        "g1": MemberStatus.OFFLINE,
    }
    # A pool with members whose backend does not run: the device does not serve the tree.
    assert lb_statuses(lb, {"be_shop__web__blue": running["be_shop__web__blue"]}) is None
    assert lb_statuses(replace(lb, pools=()), {}) == {}


# -- VIP files ----------------------------------------------------------------------------------

V01_FILE = {
    "address": "192.0.2.10",
    "members": [
        {
            "name": "m1",
            "spec": {
                "address": "10.0.0.1",
                "adminStateUp": True,
                "backup": False,
                "poolRef": "pool",
                "port": 8080,
                "weight": 3,
            },
        },
        {
            "name": "m2",
            "spec": {
                "address": "10.0.0.2",
                "adminStateUp": False,
                "backup": True,
                "monitorAddress": "10.0.0.9",
                "monitorPort": 9000,
                "poolRef": "pool",
                "port": 8080,
                "weight": 1,
            },
        },
    ],
    "monitor": {
        "adminStateUp": True,
        "delay": 5,
        "expectedCodes": "200-204",
        "httpMethod": "GET",
        "maxRetries": 3,
        "maxRetriesDown": 3,
        "poolRef": "pool",
        "timeout": 3,
        "type": "HTTP",
        "urlPath": "/healthz",
    },
    "monitorName": "hm",
    "name": "web",
    "namespace": "shop",
    "pool": {
        "adminStateUp": True,
        "lbMethod": "LEAST_CONNECTIONS",
        "protocol": "TCP",
        "vipRef": "web",
    },
    "poolName": "pool",
    "spec": {
        "adminStateUp": True,
        "connectionLimit": 100,
        "port": 80,
        "protocol": "HTTP",
        "sessionPersistence": {"cookieName": "JSESSIONID", "type": "APP_COOKIE"},
        "deviceRef": "dev1",
    },
}
"""A VIP file as the 0.1 driver wrote it (``dump_tree`` of 0.1, ``deviceRef`` added)."""


def test_a_vip_file_of_the_0_1_driver_reads_as_the_model() -> None:
    lb = load_tree(json.dumps(V01_FILE, indent=1))
    assert lb == LoadBalancer(
        "shop",
        "web",
        "192.0.2.10",
        (Listener("web", 80, Protocol.HTTP, connection_limit=100, default_pool="pool"),),
        (
            Pool(
                "pool",
                Protocol.TCP,
                Method.LEAST_CONNECTIONS,
                members=(
                    Member("m1", "10.0.0.1", 8080, weight=3),
                    Member(
                        "m2",
                        "10.0.0.2",
                        8080,
                        backup=True,
                        admin_state_up=False,
                        monitor_address="10.0.0.9",
                        monitor_port=9000,
                    ),
                ),
                monitor=HealthMonitor(
                    "hm", MonitorType.HTTP, url_path="/healthz", expected_codes="200-204"
                ),
                persistence=Persistence(PersistenceType.APP_COOKIE, "JSESSIONID"),
            ),
        ),
    )
    assert isinstance(lb.listeners[0].protocol, Protocol)  # checked and converted
    assert "backend be_shop__web__pool" in render_vip(lb).text
    rewritten = json.loads(dump_tree(lb))
    assert rewritten["version"] == 1 and load_tree(dump_tree(lb)) == lb


def test_a_0_1_vip_without_pool_is_a_listener_without_default_pool() -> None:
    old = {
        "address": "192.0.2.11",
        "members": [],
        "monitor": None,
        "monitorName": None,
        "name": "tcp",
        "namespace": "shop",
        "pool": None,
        "poolName": None,
        "spec": {"adminStateUp": False, "connectionLimit": -1, "port": 81, "protocol": "TCP"},
    }
    assert load_tree(json.dumps(old)) == LoadBalancer(
        "shop", "tcp", "192.0.2.11", (Listener("tcp", 81, admin_state_up=False),)
    )


@pytest.mark.parametrize(
    "broken",
    [
        {**V01_FILE, "spec": {**V01_FILE["spec"], "port": "80"}},  # type: ignore[dict-item]
        {**V01_FILE, "members": [{"name": "m1", "spec": {"address": "10.0.0.1"}}]},
        {**V01_FILE, "spec": "web"},
        {"version": 2, "tree": {}},
        {"version": 1, "tree": {"namespace": "shop", "name": "web", "address": "x", "extra": 1}},
        [],
    ],
    ids=[
        "port a string",
        "member without port",
        "spec not an object",
        "newer version",
        "unknown field",
        "not an object",
    ],
)
def test_a_broken_vip_file_is_refused(broken: object) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        load_tree(json.dumps(broken))


def test_a_stored_tree_holds_no_key_material() -> None:
    lb = replace(
        two_pools(),
        listeners=(
            Listener(
                "web",
                443,
                Protocol.TERMINATED_HTTPS,
                tls=ListenerTLS((_certificate(),)),
                default_pool="blue",
            ),
        ),
    )
    text = dump_tree(lb)
    assert '"key"' not in text and re.search(r'"sensitive": "sha256:[0-9a-f]{32}"', text)
    assert load_tree(text) == lb
