"""Render a device's HAProxy configuration: a global file and one fragment per load balancer.

HAProxy loads ``haproxy.cfg`` (global, defaults) and every ``conf.d/*.cfg`` (one per load
balancer), so a change to one rewrites one small file however many the device holds. A
fragment holds a frontend per listener and a backend per pool (``proxies``).

Besides its text, a fragment yields a *structure* digest: the fragment without what the
runtime API can change. For most backends that is every server (HAProxy 2.6 adds and removes
servers at run time); with HTTP_COOKIE persistence, whose ``cookie`` keyword ``add server``
does not take, only server weights and admin states. Two fragments with equal digests differ
only in what the runtime API can change, so the driver applies the difference without a reload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from lbaas.drivers.capabilities import FEATURES as VOCABULARY
from lbaas.drivers.capabilities import missing
from lbaas.drivers.errors import DriverError, UnsupportedError
from lbaas.drivers.haproxy.features import FEATURES
from lbaas.drivers.haproxy.l7 import MapFile, policy_problem
from lbaas.drivers.haproxy.names import check_names
from lbaas.drivers.haproxy.proxies import (
    Backend,
    Frontend,
    address_of,
    backend,
    frontend,
    pool_protocols,
)
from lbaas.drivers.haproxy.tokens import UnsafeValueError, finalize, token
from lbaas.drivers.model import LoadBalancer, PersistenceType, Protocol

TEMPLATES = Path(__file__).parent / "templates"

HEADER = "# lbaas-operator VIP fragment, do not edit; structure="
"""First line of every fragment: the structure digest of what HAProxy loads from it."""
MAX_KEY_BYTES = 230
"""``<namespace>__<name>`` names a load balancer's files (``conf.d/<it>.cfg``,
``vips/<it>.json``, and ``.<file>.XXXXXXXX.new`` while staged): under the file systems'
255-byte limit on a name, namespace and name may take 228 bytes together (165 for the name in
a 63-character namespace, where Kubernetes allows 253). Longer keys are refused up front
(before: ``OSError`` from deep inside an apply, retried forever)."""


@dataclass(frozen=True)
class GlobalSettings:
    runtime_socket: str
    server_state_file: str
    hard_stop_after: int = 900
    state_dir: str = ""
    """Where relative paths (the L7 map files, ``maps/...``) are found (``default-path``)."""


@dataclass(frozen=True)
class Fragment:
    """One load balancer's ``conf.d`` file and what the driver needs to know about it."""

    key: str
    frontends: tuple[Frontend, ...]
    backends: tuple[Backend, ...]
    structure: str
    text: str
    maps: tuple[MapFile, ...] = ()
    """The L7 map files its frontends use (``l7``): runtime-changeable, not in ``structure``."""


@dataclass(frozen=True)
class Rendered:
    """A whole configuration as one text (tests, tools); the device uses the parts."""

    text: str
    fragments: tuple[Fragment, ...]


def unsupported_reason(lb: LoadBalancer) -> str | None:
    """What of ``lb`` this driver cannot express beyond its features (a key too long for its
    file names, cookies it cannot see or parse), or None."""
    if isinstance(lb.namespace, str) and isinstance(lb.name, str):
        length = len(lb.namespace.encode()) + 2 + len(lb.name.encode())
        if length > MAX_KEY_BYTES:
            return (
                f"namespace and name are {length - 2} characters together; the haproxy driver"
                f" names its files after them and takes at most {MAX_KEY_BYTES - 2}: use a"
                " shorter VIP name"
            )
    protocols = pool_protocols(lb)
    for listener in lb.listeners:
        for policy in listener.policies:
            if problem := policy_problem(lb, listener, policy):
                return problem
    for pool in lb.pools:
        persistence = pool.persistence
        if persistence is None:
            continue
        kind, protocol = str(persistence.type), protocols[pool.name]
        cookies = (PersistenceType.HTTP_COOKIE, PersistenceType.APP_COOKIE)
        if kind in cookies and protocol != Protocol.HTTP:
            return (
                f"session persistence {kind} of pool {pool.name} needs protocol HTTP: {protocol}"
                " is passed through as TCP and HAProxy cannot see its cookies"
            )
        if kind == PersistenceType.APP_COOKIE and not persistence.cookie_name:
            return f"session persistence APP_COOKIE of pool {pool.name} needs a cookieName"
        if persistence.cookie_name is not None:
            try:
                token(persistence.cookie_name, "cookie")
            except UnsafeValueError:
                return (
                    f"cookie name {persistence.cookie_name!r} cannot be used by HAProxy: use"
                    " letters, digits and !$%&*+.^_|~- (no quote, # or backtick)"
                )
    return None


def _check_features(lb: LoadBalancer) -> None:
    """Refuse a tree that asks for a feature the driver lacks (the core checks first; a
    direct caller gets the same answer)."""
    try:
        lacking = missing(lb, FEATURES)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise UnsafeValueError("load balancer", lb.key, f"not a valid tree ({exc!r})") from exc
    if lacking:
        feature = lacking[0]
        raise UnsupportedError(
            f"VIP {lb.key} needs {feature} ({VOCABULARY[feature].description}), which the"
            " haproxy driver does not support",
            feature=feature,
        )


def _proxies(lb: LoadBalancer) -> tuple[tuple[Frontend, ...], tuple[Backend, ...]]:
    check_names(lb)
    _check_features(lb)
    reason = unsupported_reason(lb)
    if reason:
        raise UnsupportedError(f"VIP {lb.key}: {reason}")
    address_of(lb)
    protocols = pool_protocols(lb)
    frontends = tuple(frontend(lb, listener, i) for i, listener in enumerate(lb.listeners))
    return frontends, tuple(backend(lb, pool, protocols[pool.name]) for pool in lb.pools)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters["tok"] = token
    return env


_ENV = _environment()


def render_vip(lb: LoadBalancer) -> Fragment:
    """The ``conf.d`` fragment of one load balancer.

    Raises ``UnsafeValueError`` for a value that fails its token check and
    ``UnsupportedError`` for what HAProxy (or this driver) cannot express.
    """
    frontends, backends = _proxies(lb)
    view = {"frontends": frontends, "backends": backends}
    template = _ENV.get_template("vip.cfg.j2")
    structure = template.render(vip=view, structure_only=True)
    digest = hashlib.sha256(structure.encode()).hexdigest()
    text = f"{HEADER}{digest}\n" + template.render(vip=view, structure_only=False)
    maps = tuple(m for fe in frontends if fe.routing for m in fe.routing.maps)
    return Fragment(lb.key, frontends, backends, digest, text, maps)


def render_global(settings: GlobalSettings) -> str:
    return _ENV.get_template("global.cfg.j2").render(settings=settings)


def fragment_structure(text: str) -> str | None:
    """The structure digest recorded in a fragment's first line (None: not ours)."""
    first, _, _ = text.partition("\n")
    return first[len(HEADER) :] if first.startswith(HEADER) else None


def fragment_servers(text: str) -> dict[str, dict[str, str]]:
    """Backend name -> server name -> its fixed options, read back from a fragment this
    module wrote."""
    backends: dict[str, dict[str, str]] = {}
    servers: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("backend "):
            servers = backends.setdefault(line.split()[1], {})
            continue
        if not line.startswith("    server "):
            continue
        words = line.split()
        rest, i = [], 2
        while i < len(words):
            if words[i] == "weight":
                i += 2
                continue
            if words[i] != "disabled":
                rest.append(words[i])
            i += 1
        servers[words[1]] = " ".join(rest)
    return backends


def render(lbs: Iterable[LoadBalancer], settings: GlobalSettings) -> Rendered:
    """The whole configuration for ``lbs`` as one text (in key order), as the device loads it
    from its files. Raises like :func:`render_vip`, and ``AddressInUse`` when two listeners
    ask for one address:port."""
    fragments = [render_vip(lb) for lb in sorted(lbs, key=lambda lb: lb.key)]
    seen: dict[tuple[str, int], str] = {}
    for fragment in fragments:
        for fe in fragment.frontends:
            other = seen.setdefault(fe.listener, fe.name)
            if other != fe.name:
                raise DriverError(
                    f"{fe.address}:{fe.port} is already used by {other} on this device",
                    retryable=False,
                    reason="AddressInUse",
                )
    text = render_global(settings) + "".join("\n" + f.text for f in fragments)
    return Rendered(text=text, fragments=tuple(fragments))
