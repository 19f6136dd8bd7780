"""A VIP's tree (API objects) as the driver data model (pure).

The only place where the API's specs become what drivers see (``lbaas.drivers.model``): a
change of ``v1alpha1`` reaches drivers only through here. The VIP is one load balancer with
one listener, named after the VIP; its pools keep their names; session persistence, set on the
VIP in the API, applies to each of its pools.
"""

from __future__ import annotations

from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberSpec
from lbaas.api.vip import VIPSpec
from lbaas.drivers import model
from lbaas.trees.tree import PoolNode, Tree


def member(name: str, spec: MemberSpec) -> model.Member:
    return model.Member(
        name=name,
        address=spec.address,
        port=spec.port,
        weight=spec.weight,
        backup=spec.backup,
        admin_state_up=spec.admin_state_up,
        monitor_address=spec.monitor_address,
        monitor_port=spec.monitor_port,
    )


def monitor(name: str, spec: HealthMonitorSpec) -> model.HealthMonitor:
    return model.HealthMonitor(
        name=name,
        type=model.MonitorType(str(spec.type)),
        delay=spec.delay,
        timeout=spec.timeout,
        max_retries=spec.max_retries,
        max_retries_down=spec.max_retries_down,
        http_method=str(spec.http_method),
        url_path=spec.url_path,
        expected_codes=spec.expected_codes,
        admin_state_up=spec.admin_state_up,
    )


def persistence(vip: VIPSpec) -> model.Persistence | None:
    found = vip.session_persistence
    if found is None:
        return None
    return model.Persistence(model.PersistenceType(str(found.type)), found.cookie_name)


def pool(node: PoolNode, vip: VIPSpec) -> model.Pool:
    spec = node.spec
    return model.Pool(
        name=node.name,
        protocol=model.Protocol(str(spec.protocol)),
        method=model.Method(str(spec.lb_method)),
        admin_state_up=spec.admin_state_up,
        members=tuple(member(name, m) for name, m in node.members),
        monitor=monitor(*node.monitor) if node.monitor is not None else None,
        persistence=persistence(vip),
    )


def listener(name: str, vip: VIPSpec, default_pool: str | None) -> model.Listener:
    return model.Listener(
        name=name,
        port=vip.port,
        protocol=model.Protocol(str(vip.protocol)),
        connection_limit=None if vip.connection_limit == -1 else vip.connection_limit,
        admin_state_up=vip.admin_state_up,
        default_pool=default_pool,
    )


def load_balancer(tree: Tree, address: str) -> model.LoadBalancer:
    """The driver's view of ``tree``, served on ``address``. The tree's VIP spec must be valid
    (``tree.vip_spec`` not None)."""
    vip = tree.vip_spec
    assert vip is not None, "a tree with an invalid VIP spec has no load balancer"
    pools = tuple(pool(node, vip) for node in tree.pools)
    default = pools[0].name if pools else None
    return model.LoadBalancer(
        namespace=tree.namespace,
        name=tree.vip.name,
        address=address,
        listeners=(listener(tree.vip.name, vip, default),),
        pools=pools,
    )


def probe(namespace: str, name: str, vip: VIPSpec) -> model.LoadBalancer:
    """A VIP alone, before it has a device or an address (the scheduler's question: what does
    it ask of a device?). Its session persistence, set on the VIP, applies to whatever pool
    it gets: the probe carries it on an empty pool, so that a device that cannot keep it (a
    cookie it cannot read or name) is not chosen."""
    kept = persistence(vip)
    pools = () if kept is None else (model.Pool(name=name, persistence=kept),)
    return model.LoadBalancer(
        namespace=namespace,
        name=name,
        address=vip.address or "",
        listeners=(listener(name, vip, name if pools else None),),
        pools=pools,
    )
