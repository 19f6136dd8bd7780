"""How the driver names what it puts in HAProxy, and how it reads a name back.

A load balancer ``<namespace>/<name>`` becomes one frontend per listener,
``fe_<namespace>__<name>__<listener>``, and one backend per pool,
``be_<namespace>__<name>__<pool>``; servers are named after their members. The namespace is a
DNS label and every other name a DNS subdomain (checked by :func:`check_names`): none holds
``_``, so the ``__`` separators keep every name unique on the device and let
:func:`proxy_key` (``orphans``) and :data:`PROXY_IN_TEXT` (pinning HAProxy's error lines on a
load balancer) read the key back. Names written by the 0.1 driver (``be_<namespace>__<name>``)
read back as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import Listener, LoadBalancer, Pool

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
PROXY_IN_TEXT = re.compile(r"\b(?:fe|be)_([a-z0-9-]+)__([a-z0-9.-]*[a-z0-9])")
"""A frontend or backend name inside HAProxy's messages: groups namespace and name."""


def frontend_name(lb: LoadBalancer, listener: Listener) -> str:
    return f"fe_{lb.namespace}__{lb.name}__{listener.name}"


def backend_name(lb: LoadBalancer, pool: Pool | str) -> str:
    name = pool if isinstance(pool, str) else pool.name
    return f"be_{lb.namespace}__{lb.name}__{name}"


def proxy_key(proxy: str) -> str | None:
    """The load balancer key of a frontend or backend the driver named, else None."""
    if not proxy.startswith(("fe_", "be_")):
        return None
    parts = proxy[3:].split("__")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    return f"{parts[0]}/{parts[1]}"


def keys_in(text: str) -> set[str]:
    """Keys of the load balancers whose frontends or backends ``text`` names."""
    return {f"{m[1]}/{m[2]}" for m in PROXY_IN_TEXT.finditer(text)}


def _subdomain(kind: str, value: object) -> None:
    if not isinstance(value, str) or not DNS_SUBDOMAIN.fullmatch(value):
        raise UnsafeValueError(kind, value, "not a DNS subdomain")


def _unique(kind: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UnsafeValueError(kind, name, "used twice in the load balancer")
        seen.add(name)


def check_names(lb: LoadBalancer) -> None:
    """Every name that becomes part of a proxy or server name is a Kubernetes name, unique in
    its load balancer (raises :class:`UnsafeValueError`)."""
    if not isinstance(lb.namespace, str) or not DNS_LABEL.fullmatch(lb.namespace):
        raise UnsafeValueError("namespace", lb.namespace, "not a DNS label")
    _subdomain("name", lb.name)
    for listener in lb.listeners:
        _subdomain("listener name", listener.name)
    for pool in lb.pools:
        _subdomain("pool name", pool.name)
    for _, member in lb.members():
        _subdomain("member name", member.name)
    _unique("listener name", (listener.name for listener in lb.listeners))
    _unique("pool name", (pool.name for pool in lb.pools))
    _unique("member name", (member.name for _, member in lb.members()))
    pools = {pool.name for pool in lb.pools}
    for listener in lb.listeners:
        if listener.default_pool is not None and listener.default_pool not in pools:
            raise UnsafeValueError("default pool", listener.default_pool, "no such pool")
