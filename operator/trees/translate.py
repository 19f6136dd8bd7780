"""A VIP's tree (API objects) as the driver data model (pure).

The only place where the API's specs become what drivers see (``lbaas.drivers.model``): a
change of ``v1alpha1`` reaches drivers only through here. The VIP is one load balancer with
one listener, named after the VIP, whose policies are the tree's L7Policies in evaluation
order and whose default pool is the tree's; its pools keep their names; session persistence,
set on the VIP in the API, applies to each of its pools. Forwarded headers: as the VIP says,
on by default for HTTP (``lbaas.trees.l7.fit`` drops the default where the device lacks them).

TLS material (certificates, keys, CA bundles) comes resolved from the Secrets by the agent
(``lbaas.tls.resolve.Material``). Without it (the controller's questions: which device can take
this tree?) the TLS parts are shapes: certificates known by name only, never sent to a driver.
"""

from __future__ import annotations

from lbaas.api import l7match, l7policy
from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberSpec
from lbaas.api.vip import HTTP_PROTOCOLS, VIPSpec
from lbaas.drivers import model
from lbaas.tls.resolve import Material, shapes
from lbaas.trees.tree import PolicyNode, PoolNode, Tree


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


def pool(node: PoolNode, vip: VIPSpec, tls: model.BackendTLS | None = None) -> model.Pool:
    spec = node.spec
    return model.Pool(
        name=node.name,
        protocol=model.Protocol(str(spec.protocol)),
        method=model.Method(str(spec.lb_method)),
        admin_state_up=spec.admin_state_up,
        members=tuple(member(name, m) for name, m in node.members),
        monitor=monitor(*node.monitor) if node.monitor is not None else None,
        persistence=persistence(vip),
        tls=tls,
    )


def listener(
    name: str,
    vip: VIPSpec,
    default_pool: str | None,
    policies: tuple[model.L7Policy, ...] = (),
    *,
    tls: model.ListenerTLS | None = None,
) -> model.Listener:
    return model.Listener(
        name=name,
        port=vip.port,
        protocol=model.Protocol(str(vip.protocol)),
        connection_limit=None if vip.connection_limit == -1 else vip.connection_limit,
        admin_state_up=vip.admin_state_up,
        default_pool=default_pool,
        policies=policies,
        forwarded_headers=forwarded_headers(vip),
        tls=tls,
    )


def forwarded_headers(vip: VIPSpec) -> bool:
    """As the VIP says; unset: on for HTTP VIPs."""
    if vip.forwarded_headers is not None:
        return vip.forwarded_headers
    return str(vip.protocol) in HTTP_PROTOCOLS


def load_balancer(tree: Tree, address: str, material: Material | None = None) -> model.LoadBalancer:
    """The driver's view of ``tree``, served on ``address``, with the TLS ``material`` the
    agent resolved (None: shapes only, for questions, never for a driver). The tree's VIP spec
    must be valid (``tree.vip_spec`` not None)."""
    vip = tree.vip_spec
    assert vip is not None, "a tree with an invalid VIP spec has no load balancer"
    if material is None:
        material = shapes(vip, [(node.name, node.spec) for node in tree.pools])
    pools = tuple(pool(node, vip, material.backends.get(node.name)) for node in tree.pools)
    policies = tuple(policy(node) for node in tree.policies)
    return model.LoadBalancer(
        namespace=tree.namespace,
        name=tree.vip.name,
        address=address,
        listeners=(
            listener(tree.vip.name, vip, tree.default.name, policies, tls=material.listener),
        ),
        pools=pools,
    )


# ---- L7 policies ------------------------------------------------------------------------------


def policy(node: PolicyNode) -> model.L7Policy:
    spec = node.spec
    return model.L7Policy(
        name=node.name,
        priority=spec.priority,
        match=match(spec.match),
        action=action(spec.action),
        request_headers=header_changes(spec.request_headers),
        response_headers=header_changes(spec.response_headers),
    )


def match(spec: l7match.Match) -> model.Match:
    path = spec.path
    return model.Match(
        hostnames=tuple(dict.fromkeys(spec.hostnames or ())),
        path=model.PathMatch(model.PathMatchType(str(path.type)), path.value) if path else None,
        headers=tuple(_value_match(h) for h in spec.headers or ()),
        method=str(spec.method) if spec.method else None,
        query_params=tuple(_value_match(q) for q in spec.query_params or ()),
    )


def _value_match(spec: l7match.HeaderMatch | l7match.QueryParamMatch) -> model.ValueMatch:
    return model.ValueMatch(spec.name, spec.value, model.ValueMatchType(str(spec.type)))


def action(spec: l7policy.Action) -> model.Action:
    kind = model.ActionType(str(spec.type))
    if kind == model.ActionType.FORWARD:
        pools = tuple(
            model.WeightedPool(p.pool_ref, p.weight) for p in spec.pools or () if p.weight
        )
        return model.Action(kind, pools=pools)
    if kind == model.ActionType.REDIRECT:
        found = spec.redirect
        assert found is not None, "the model refuses a Redirect without redirect"
        path = found.path
        return model.Action(
            kind,
            redirect=model.Redirect(
                scheme=found.scheme,
                hostname=found.hostname,
                port=found.port,
                replace_full_path=path.replace_full_path if path else None,
                replace_prefix_match=path.replace_prefix_match if path else None,
                status_code=found.status_code,
            ),
        )
    return model.Action(kind, status_code=spec.reject.status_code if spec.reject else 403)


def header_changes(spec: l7policy.HeaderChanges | None) -> model.HeaderChanges | None:
    if spec is None:
        return None
    return model.HeaderChanges(
        set=tuple(model.Header(h.name, h.value) for h in spec.set or ()),
        add=tuple(model.Header(h.name, h.value) for h in spec.add or ()),
        remove=tuple(spec.remove or ()),
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
        listeners=(listener(name, vip, name if pools else None, tls=shapes(vip, []).listener),),
        pools=pools,
    )
