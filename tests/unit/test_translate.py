"""The API's tree as the driver data model (``lbaas.trees.translate``), and back to contract 0
through the compatibility shim (``lbaas.drivers.legacy``)."""

from __future__ import annotations

from lbaas.api.vip import VIPSpec
from lbaas.drivers import capabilities, legacy
from lbaas.drivers import model as m
from lbaas.trees.translate import load_balancer, probe
from lbaas.trees.tree import build_tree
from unit.test_tree import NS, member, monitor, pool, snap, vip


def test_vip_options_become_the_listener_and_persistence_goes_to_every_pool() -> None:
    tree = build_tree(
        vip(
            protocol="HTTP",
            connectionLimit=100,
            adminStateUp=False,
            sessionPersistence={"type": "APP_COOKIE", "cookieName": "JSESSIONID"},
        ),
        [snap("Pool", "p", {"vipRef": "web", "protocol": "HTTP", "lbMethod": "SOURCE_IP"})],
        {"p": [snap("Member", "m", {"poolRef": "p", "address": "10.1.0.1", "port": 80,
                                    "weight": 0, "backup": True, "monitorPort": 81})]},
        {"p": [snap("HealthMonitor", "hm", {"poolRef": "p", "type": "HTTP", "urlPath": "/hz",
                                            "expectedCodes": "200-204"})]},
    )  # fmt: skip
    lb = load_balancer(tree, "192.0.2.7")
    (listener,) = lb.listeners
    assert listener == m.Listener(
        name="web",
        port=80,
        protocol=m.Protocol.HTTP,
        connection_limit=100,
        admin_state_up=False,
        default_pool="p",
        forwarded_headers=True,  # on by default for HTTP VIPs (issue 20)
    )
    (p,) = lb.pools
    assert p.method == m.Method.SOURCE_IP and p.protocol == m.Protocol.HTTP
    assert p.persistence == m.Persistence(m.PersistenceType.APP_COOKIE, "JSESSIONID")
    assert p.members == (m.Member("m", "10.1.0.1", 80, weight=0, backup=True, monitor_port=81),)
    assert p.monitor == m.HealthMonitor(
        "hm", m.MonitorType.HTTP, url_path="/hz", expected_codes="200-204"
    )


def test_a_translated_tree_is_hashable_and_equal_when_nothing_changed() -> None:
    def tree() -> m.LoadBalancer:
        built = build_tree(
            vip(), [pool("p")], {"p": [member("a", "p")]}, {"p": [monitor("h", "p")]}
        )
        return load_balancer(built, "192.0.2.1")

    assert tree() == tree() and hash(tree()) == hash(tree())


def test_probe_is_the_vip_alone() -> None:
    alone = probe(NS, "web", VIPSpec(port=443, protocol="HTTPS"))
    assert alone.pools == () and alone.listeners[0].protocol == m.Protocol.HTTPS
    assert alone.listeners[0].default_pool is None


def test_the_probe_carries_the_vips_persistence() -> None:
    """Persistence is the VIP's in the API and a pool's in the model: the scheduler's probe
    keeps it (on an empty pool), so a device whose driver cannot keep it is not chosen."""
    spec = VIPSpec(port=80, protocol="HTTP",
                   session_persistence={"type": "APP_COOKIE", "cookieName": "sess'id"})  # fmt: skip
    alone = probe(NS, "web", spec)
    (pool,) = alone.pools
    assert pool.persistence == m.Persistence(m.PersistenceType.APP_COOKIE, "sess'id")
    assert pool.members == () and alone.listeners[0].default_pool == pool.name
    assert "persistence.app-cookie" in capabilities.required_features(alone)
    from lbaas.drivers.haproxy import HAProxyDriver

    why = capabilities.why_unsupported(HAProxyDriver(), {}, alone)
    assert why is not None and 'cookie name "sess\'id" cannot be used by HAProxy' in why


def test_a_udp_vip_asks_for_protocol_udp() -> None:
    alone = probe(NS, "dns", VIPSpec(port=53, protocol="UDP"))
    assert alone.listeners[0].protocol == m.Protocol.UDP
    assert capabilities.required_features(alone) == {"protocol.udp"}
    udp_pool = snap("Pool", "p", {"vipRef": "web", "protocol": "UDP"})
    tree = build_tree(vip(protocol="UDP"), [udp_pool], {"p": [member("a", "p")]}, {})
    lb = load_balancer(tree, "192.0.2.1")
    assert lb.listeners[0].protocol == m.Protocol.UDP and lb.pools[0].protocol == m.Protocol.UDP
    assert "protocol.udp" in capabilities.required_features(lb)
    # A driver of contract 0 never gets one: the shim declares no UDP.
    assert "protocol.udp" not in legacy.V0_FEATURES


def test_the_shim_gives_a_contract_0_driver_the_tree_it_had_in_0_1() -> None:
    built = build_tree(
        vip(protocol="HTTP", sessionPersistence={"type": "HTTP_COOKIE"}, connectionLimit=5),
        [pool("p")],
        {"p": [member("a", "p", "10.1.0.1"), member("b", "p", "10.1.0.2")]},
        {"p": [monitor("hm", "p")]},
    )
    old = legacy.to_v0(load_balancer(built, "192.0.2.1"))
    assert (old.namespace, old.name, old.address) == (NS, "web", "192.0.2.1")
    assert old.spec.port == 80 and old.spec.protocol == "HTTP" and old.spec.connection_limit == 5
    assert old.spec.session_persistence is not None
    assert old.spec.session_persistence.type == "HTTP_COOKIE"
    assert old.pool_name == "p" and old.pool is not None and old.pool.vip_ref == "web"
    assert [(e.name, e.spec.address, e.spec.pool_ref) for e in old.members] == [
        ("a", "10.1.0.1", "p"),
        ("b", "10.1.0.2", "p"),
    ]
    assert old.monitor_name == "hm" and old.monitor is not None and old.monitor.type == "TCP"
    nothing = legacy.to_v0(load_balancer(build_tree(vip(), [], {}, {}), "192.0.2.1"))
    assert nothing.pool is None and nothing.members == () and nothing.spec.connection_limit == -1
