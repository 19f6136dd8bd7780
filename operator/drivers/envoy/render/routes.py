"""L7 policies as Envoy virtual hosts and routes (the route table inlined in the listener).

Envoy picks a virtual host by the request's host first, then the first route of that host that
matches. Policies apply in their own order whatever host they name, so every host a policy
names gets a virtual host holding, in order, each policy that applies to it (those naming a
host that covers it, and those naming none), then the default route; the catch-all ``*`` holds
the policies naming no host. A ``*.example.com`` policy covers ``a.example.com``'s virtual host
too (Envoy prefers the exact host's).

The default route forwards to the listener's default pool, or answers 503 without one.
Route timeouts are off (Envoy's default of 15 s would cut long requests the other drivers
serve); the listener's idle timeouts still apply.
"""

from __future__ import annotations

from typing import Any

from lbaas.drivers.envoy.render import checks
from lbaas.drivers.envoy.render.clusters import hash_policy
from lbaas.drivers.envoy.render.names import cluster_name
from lbaas.drivers.model import (
    Action,
    ActionType,
    HeaderChanges,
    L7Policy,
    Listener,
    LoadBalancer,
    Match,
    PathMatchType,
    Protocol,
    ValueMatch,
    ValueMatchType,
)


def _string_match(where: str, value: ValueMatch) -> dict[str, Any]:
    if value.type == ValueMatchType.REGEX:
        checks.regex(where, value.value)
        return {"safe_regex": {"regex": value.value}}
    checks.printable(where, value.value, checks.MAX_HEADER_VALUE)
    return {"exact": value.value}


def _match(where: str, match: Match) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    path = match.path
    if path is None:
        rendered["prefix"] = "/"
    elif path.type == PathMatchType.REGEX:
        checks.regex(f"{where} path", path.value)
        rendered["safe_regex"] = {"regex": path.value}
    else:
        checks.path(f"{where} path", path.value)
        if path.type == PathMatchType.EXACT:
            rendered["path"] = path.value
        elif path.value.rstrip("/"):
            rendered["path_separated_prefix"] = path.value.rstrip("/")
        else:
            rendered["prefix"] = "/"
    headers = []
    for header in match.headers:
        checks.header_name(f"{where} header", header.name)
        if header.name.startswith(":") or header.name.lower() == "host":
            raise checks.InvalidValue(where, f"match hostnames, not the {header.name} header")
        headers.append({"name": header.name.lower(), "string_match": _string_match(where, header)})
    if match.method is not None:
        checks.method(f"{where} method", match.method)
        headers.append({"name": ":method", "string_match": {"exact": match.method}})
    if headers:
        rendered["headers"] = headers
    if match.query_params:
        params = []
        for param in match.query_params:
            checks.printable(f"{where} query parameter", param.name)
            params.append({"name": param.name, "string_match": _string_match(where, param)})
        rendered["query_parameters"] = params
    return rendered


def _forward(lb: LoadBalancer, pools: list[tuple[str, int]]) -> dict[str, Any]:
    route: dict[str, Any] = {"timeout": "0s"}
    if len(pools) == 1:
        route["cluster"] = cluster_name(lb.key, pools[0][0])
    else:
        route["weighted_clusters"] = {
            "clusters": [
                {"name": cluster_name(lb.key, pool), "weight": weight} for pool, weight in pools
            ]
        }
    first = lb.pool(pools[0][0])
    if first is not None and (policy := hash_policy(first, http=True)):
        route["hash_policy"] = policy
    return route


_SCHEME_PORTS = {"http": 80, "https": 443}


def _redirect(where: str, action: Action, match: Match, listener: Listener) -> dict[str, Any]:
    """Envoy's redirect: each part unset keeps the request's. The port too: the port the client
    connected to (the listener's; the Host header's port is stripped), left out when it is the
    scheme's default, and a scheme changed without a port goes to that scheme's default."""
    redirect = action.redirect
    if redirect is None:
        raise checks.InvalidValue(where, "a Redirect action needs a redirect")
    if redirect.status_code not in checks.REDIRECT_CODES:
        raise checks.InvalidValue(where, f"redirect status {redirect.status_code} is not 30[12378]")
    rendered: dict[str, Any] = {"response_code": checks.REDIRECT_CODES[redirect.status_code]}
    if redirect.scheme is not None:
        if redirect.scheme not in ("http", "https"):
            raise checks.InvalidValue(where, f"redirect scheme {redirect.scheme!r}")
        rendered["scheme_redirect"] = redirect.scheme
    if redirect.hostname is not None:
        rendered["host_redirect"] = checks.hostname(where, redirect.hostname, wildcard=False)
    if redirect.port is not None:
        checks.port(where, redirect.port)
        rendered["port_redirect"] = redirect.port
    elif redirect.scheme is None:
        own = "https" if listener.protocol == Protocol.TERMINATED_HTTPS else "http"
        if listener.port != _SCHEME_PORTS[own]:
            rendered["port_redirect"] = listener.port
    if redirect.replace_full_path is not None:
        checks.path(f"{where} redirect path", redirect.replace_full_path)
        rendered["path_redirect"] = redirect.replace_full_path
    elif redirect.replace_prefix_match is not None:
        if match.path is None or match.path.type != PathMatchType.PREFIX:
            raise checks.InvalidValue(where, "replacePrefixMatch needs a PathPrefix match")
        checks.path(f"{where} redirect prefix", redirect.replace_prefix_match)
        rendered["prefix_rewrite"] = redirect.replace_prefix_match
    return rendered


def _headers(where: str, changes: HeaderChanges, side: str) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    add = []
    for header, action in [(h, "OVERWRITE_IF_EXISTS_OR_ADD") for h in changes.set] + [
        (h, "APPEND_IF_EXISTS_OR_ADD") for h in changes.add
    ]:
        checks.header_name(f"{where} {side} header", header.name, modified=True)
        checks.header_value(f"{where} {side} header {header.name}", header.value)
        add.append({
            "header": {"key": header.name.lower(), "value": checks.formatted(header.value)},
            "append_action": action,
        })  # fmt: skip
    if add:
        rendered[f"{side}_headers_to_add"] = add
    for name in changes.remove:
        checks.header_name(f"{where} {side} header", name, modified=True)
    if changes.remove:
        rendered[f"{side}_headers_to_remove"] = [name.lower() for name in changes.remove]
    return rendered


def render_route(lb: LoadBalancer, policy: L7Policy, listener: Listener) -> dict[str, Any]:
    where = f"policy {policy.name}"
    checks.name(where, policy.name)
    route: dict[str, Any] = {"name": policy.name, "match": _match(where, policy.match)}
    action = policy.action
    if action.type == ActionType.FORWARD:
        pools = [(wp.pool, wp.weight) for wp in action.pools]
        if not pools or any(w < 0 for _, w in pools) or sum(w for _, w in pools) < 1:
            raise checks.InvalidValue(where, "a Forward action needs pools with some weight")
        route["route"] = _forward(lb, pools)
    elif action.type == ActionType.REDIRECT:
        route["redirect"] = _redirect(where, action, policy.match, listener)
    else:
        if not 200 <= action.status_code <= 599:
            raise checks.InvalidValue(where, f"reject status {action.status_code} not in 200-599")
        route["direct_response"] = {"status": action.status_code}
    for changes, side in ((policy.request_headers, "request"), (policy.response_headers,
                                                                 "response")):  # fmt: skip
        if changes is not None:
            route |= _headers(where, changes, side)
    return route


def _covers(name: str, host: str) -> bool:
    return name == host or (name.startswith("*.") and host.endswith(name[1:]))


def default_route(lb: LoadBalancer, listener: Listener) -> dict[str, Any]:
    if listener.default_pool is None:
        return {"name": "default", "match": {"prefix": "/"}, "direct_response": {"status": 503}}
    return {
        "name": "default",
        "match": {"prefix": "/"},
        "route": _forward(lb, [(listener.default_pool, 1)]),
    }


def render_route_config(lb: LoadBalancer, listener: Listener, name: str) -> dict[str, Any]:
    routes = []
    for policy in listener.policies:
        hosts = [checks.hostname(f"policy {policy.name}", h) for h in policy.match.hostnames]
        routes.append((hosts, render_route(lb, policy, listener)))
    default = default_route(lb, listener)
    domains = list(dict.fromkeys(host for hosts, _ in routes for host in hosts))
    virtual_hosts = [
        {
            "name": domain,
            "domains": [domain],
            "routes": [
                route
                for hosts, route in routes
                if not hosts or any(_covers(host, domain) for host in hosts)
            ]
            + [default],
        }
        for domain in domains
    ]
    virtual_hosts.append(
        {"name": "any", "domains": ["*"], "routes": [r for h, r in routes if not h] + [default]}
    )
    return {"name": name, "validate_clusters": False, "virtual_hosts": virtual_hosts}
