"""A VIP's L7 policies in its tree: which may go to the device, in which order, and why not.

A policy goes to the device only when everything about it holds (blast radius of one: a bad
policy is left out and says why, the rest of the VIP and the device are unaffected):

- its spec validates (else ``InvalidSpec``), its VIP speaks HTTP (else ``ProtocolMismatch``);
- every pool it forwards to is a pool of its own VIP in use (else ``PoolNotFound``, or
  ``PoolNotInVIP`` for another VIP's pool);
- a redirect does not send requests back to where they came from (``RedirectLoop``);
- no older policy has the same priority and the same match (``Conflict``: the oldest wins,
  as everywhere here);
- the device's driver can serve it (``Unsupported``, naming the feature: :func:`fit`, at
  apply time, since only then is the device known).

Policies in use are in evaluation order: priority, then name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from lbaas.api.l7match import Match
from lbaas.api.l7policy import L7PolicySpec
from lbaas.api.vip import HTTP_PROTOCOLS, VIPSpec
from lbaas.drivers.model import Listener, LoadBalancer
from lbaas.trees.tree import (
    PolicyNode,
    PoolOwner,
    Snapshot,
    Tree,
    TreeObject,
    name_of,
    parse,
    pool_problem,
)

Why = Callable[[LoadBalancer], str | None]
"""Why a device cannot serve a load balancer (its missing features, its driver's refusal),
or None when it can."""


def _age_key(snap: Snapshot) -> tuple[str, str]:
    return (str(snap["metadata"].get("creationTimestamp") or ""), name_of(snap))


def attach(tree: Tree, policies: Iterable[Snapshot], pool_owner: PoolOwner | None = None) -> Tree:
    """Add ``policies`` (the VIP's L7Policy objects) to ``tree``: every one to its objects,
    those that may go to the device to ``tree.policies``, in evaluation order."""
    objs = [TreeObject(s) for s in sorted(policies, key=_age_key)]
    tree.objects += objs
    winners: dict[tuple[Any, ...], PolicyNode] = {}
    for obj in objs:
        if obj.deleting:
            continue
        spec = parse(L7PolicySpec, obj)
        if spec is None:
            continue
        refused = _refusal(tree, spec, pool_owner)
        if refused is not None:
            obj.problem_reason, obj.problem = refused
            continue
        key = (spec.priority, match_key(spec.match))
        first = winners.get(key)
        if first is not None:
            obj.problem_reason = "Conflict"
            obj.problem = (
                f"L7Policy {first.name} (older) has the same priority ({spec.priority}) and the"
                " same match; only the oldest is used: change the priority or the match"
            )
            continue
        winners[key] = PolicyNode(obj, spec)
    tree.policies = sorted(winners.values(), key=lambda n: (n.spec.priority, n.name))
    return tree


def _refusal(
    tree: Tree, spec: L7PolicySpec, pool_owner: PoolOwner | None
) -> tuple[str, str] | None:
    """Why this (valid) policy cannot be used in ``tree``: (reason, message), or None."""
    vip = tree.vip_spec
    if vip is not None and str(vip.protocol) not in HTTP_PROTOCOLS:
        return (
            "ProtocolMismatch",
            f"VIP {tree.vip.name} has protocol {vip.protocol}: L7 policies apply to HTTP VIPs"
            f" only ({', '.join(HTTP_PROTOCOLS)})",
        )
    in_use = {node.name for node in tree.pools}
    for ref in spec.pool_refs():
        if ref not in in_use:
            return pool_problem(tree, ref, pool_owner, what="action.pools")
    if vip is not None and redirects_to_itself(spec, vip):
        return (
            "RedirectLoop",
            f"the redirect sends every request it takes back to VIP {tree.vip.name} as it"
            " came: set another scheme, port, hostname or path",
        )
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def redirects_to_itself(spec: L7PolicySpec, vip: VIPSpec) -> bool:
    """Whether the redirect names only the VIP's own scheme and port (a redirect loop)."""
    redirect = spec.action.redirect
    if redirect is None or redirect.hostname or redirect.path:
        return False
    own = "https" if str(vip.protocol) == "TERMINATED_HTTPS" else "http"
    scheme = redirect.scheme or own
    port = redirect.port or (vip.port if scheme == own else _DEFAULT_PORTS[scheme])
    return scheme == own and port == vip.port


def match_key(match: Match) -> tuple[Any, ...]:
    """``match`` in a canonical form: two matches that take the same requests compare equal
    (lists are sets; header names are case-insensitive)."""
    path = (str(match.path.type), match.path.value) if match.path else None
    headers = sorted((h.name.lower(), str(h.type), h.value) for h in match.headers or ())
    query = sorted((q.name, str(q.type), q.value) for q in match.query_params or ())
    hosts = tuple(sorted(set(match.hostnames or ())))
    method = str(match.method) if match.method else None
    return (hosts, path, tuple(headers), method, tuple(query))


# ---- fitting the tree to its device ---------------------------------------------------------


def fit(tree: Tree, lb: LoadBalancer, why: Why, *, device: str) -> LoadBalancer:
    """``lb`` without what its device cannot serve but may go without: policies asking for
    a feature it lacks (each marked ``Unsupported`` in ``tree``, naming it) and the forwarded
    headers the VIP leaves to the default. What is left may still be refused as a whole (a
    pool's or the listener's own feature): the VIP then says ``Unsupported``."""
    if why(lb) is None or len(lb.listeners) != 1:
        return lb
    (listener,) = lb.listeners
    base = replace(listener, policies=())
    if tree.vip_spec is not None and tree.vip_spec.forwarded_headers is None:
        lean = replace(base, forwarded_headers=False)
        if listener.forwarded_headers and why(_with(lb, lean)) is None and why(_with(lb, base)):
            base = lean
    if why(_with(lb, base)) is not None:
        return lb  # refused without any policy: the VIP says why, naming it
    nodes = {node.name: node for node in tree.policies}
    kept: list[Any] = []
    for policy in listener.policies:
        trial = _with(lb, replace(base, policies=(*kept, policy)))
        refused = why(trial)
        if refused is None:
            kept.append(policy)
            continue
        node = nodes[policy.name]
        node.obj.problem_reason = "Unsupported"
        node.obj.problem = (
            f"device {device} cannot serve this policy: {refused}; it is left out, the rest of"
            f" VIP {tree.vip.name} is served (use a device whose driver can: kubectl get lbdev"
            " shows their features)"
        )
    tree.policies = [node for node in tree.policies if not node.obj.problem]
    return _with(lb, replace(base, policies=tuple(kept)))


def essential(lb: LoadBalancer, vip: VIPSpec) -> LoadBalancer:
    """``lb`` without what :func:`fit` may leave out: what any device that takes the VIP
    must serve (the scheduler's fallback when no device serves all of it)."""
    listeners = tuple(
        replace(
            listener,
            policies=(),
            forwarded_headers=bool(vip.forwarded_headers) and listener.forwarded_headers,
        )
        for listener in lb.listeners
    )
    return replace(lb, listeners=listeners)


def _with(lb: LoadBalancer, listener: Listener) -> LoadBalancer:
    return replace(lb, listeners=(listener,))
