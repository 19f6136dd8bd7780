"""One tree rendered whole, and the files of a device from all of its trees.

A tree renders to its listeners and clusters (which go into the device's one LDS and one CDS
file), one EDS file per pool and one SDS file per certificate. Every listener and cluster
carries its tree's key and a digest of itself in ``metadata.filter_metadata.lbaas``: what
Envoy runs (``/config_dump``) is compared with what the tree renders by digest (``verify``).

A stored tree (``documents.from_document``) holds no keys: its SDS files are not rendered again
but kept as they are on disk (``secrets`` maps them to None), with the fingerprint of the key
they must hold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbaas.drivers.documents import StoredKey
from lbaas.drivers.envoy.render import checks
from lbaas.drivers.envoy.render.clusters import check_pool, render_cluster, render_endpoints
from lbaas.drivers.envoy.render.listeners import check_listener, render_listener, render_secret
from lbaas.drivers.envoy.render.names import cluster_name, secret_name, stem, too_long
from lbaas.drivers.model import LoadBalancer, Protocol


@dataclass(frozen=True)
class Socket:
    address: str
    port: int
    udp: bool

    def __str__(self) -> str:
        return f"{self.address}:{self.port}{'/udp' if self.udp else ''}"


@dataclass
class Rendered:
    """What one tree puts on the device."""

    key: str
    listeners: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)
    """EDS file name → its text (``endpoints: files``; none when they are inline)."""
    assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Cluster name → its ClusterLoadAssignment (the members Envoy must run), either way."""
    secrets: dict[str, str | None] = field(default_factory=dict)
    """SDS file name → its text, or None: keep the file on disk (a stored tree's key)."""
    key_fingerprints: dict[str, str] = field(default_factory=dict)
    """SDS file name → the fingerprint of the key it holds."""
    sockets: list[Socket] = field(default_factory=list)


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def _stamped(resource: dict[str, Any], key: str) -> dict[str, Any]:
    resource["metadata"] = {"filter_metadata": {"lbaas": {"tree": key, "digest": digest(resource)}}}
    return resource


def stamp_of(resource: dict[str, Any]) -> str | None:
    """The digest a rendered (or running) resource carries."""
    meta = resource.get("metadata", {}).get("filter_metadata", {}).get("lbaas", {})
    value = meta.get("digest")
    return value if isinstance(value, str) else None


def discovery(resources: list[dict[str, Any]]) -> str:
    """A file of Envoy's filesystem xDS: a DiscoveryResponse whose version is its digest."""
    return json.dumps({"version_info": digest(resources), "resources": resources}) + "\n"


def version_of(text: str | None) -> str | None:
    try:
        return str(json.loads(text or "")["version_info"])
    except (ValueError, KeyError, TypeError):
        return None


def check_tree(lb: LoadBalancer) -> None:
    checks.name("load balancer namespace", lb.namespace)
    checks.name("load balancer name", lb.name)
    checks.ip("load balancer address", lb.address)
    if why := too_long(lb):
        raise checks.InvalidValue("load balancer", why)
    if len({listener.name for listener in lb.listeners}) != len(lb.listeners):
        raise checks.InvalidValue("listeners", "two listeners have the same name")
    if len({pool.name for pool in lb.pools}) != len(lb.pools):
        raise checks.InvalidValue("pools", "two pools have the same name")
    for listener in lb.listeners:
        check_listener(listener)
    for pool in lb.pools:
        check_pool(lb, pool)


def render_tree(lb: LoadBalancer, *, eds_dir: Path, sds_dir: Path, inline: bool = False
                ) -> Rendered:  # fmt: skip
    """Everything ``lb`` puts on a device whose EDS and SDS files are in these dirs (with
    ``inline``, each pool's members are in its cluster: no EDS file).

    :raises InvalidValue: a value Envoy could not take (nothing of the tree is rendered).
    """
    check_tree(lb)
    out = Rendered(lb.key)
    for listener in lb.listeners:
        socket = Socket(lb.address, listener.port, listener.protocol == Protocol.UDP)
        if socket in out.sockets:
            raise checks.InvalidValue(f"listener {listener.name}", f"{socket} is used twice")
        out.sockets.append(socket)
        if not listener.admin_state_up:
            out.sockets.pop()
            continue
        if listener.tls is not None:
            for cert in listener.tls.certificates:
                secret = secret_name(lb.key, listener.name, cert.name)
                file = f"{stem(secret)}.json"
                stored = isinstance(cert.private_key, StoredKey)
                out.secrets[file] = None if stored else discovery([render_secret(secret, cert)])
                out.key_fingerprints[file] = cert.private_key.fingerprint
        listener_resource = render_listener(
            lb, listener, lambda secret: str(sds_dir / f"{stem(secret)}.json")
        )
        out.listeners.append(_stamped(listener_resource, lb.key))
    for pool in lb.pools:
        name = cluster_name(lb.key, pool.name)
        file = f"{stem(name)}.json"
        assignment = render_endpoints(lb, pool)
        out.assignments[name] = assignment
        if inline:
            cluster = render_cluster(lb, pool, None, assignment)
        else:
            cluster = render_cluster(lb, pool, str(eds_dir / file))
            out.endpoints[file] = discovery([assignment])
        out.clusters.append(_stamped(cluster, lb.key))
    return out


def device_files(rendered: list[Rendered]) -> tuple[str, str]:
    """The device's LDS and CDS files from every tree it serves (sorted by name: the same
    trees always give the same text)."""
    listeners = sorted((r for t in rendered for r in t.listeners), key=lambda r: r["name"])
    clusters = sorted((r for t in rendered for r in t.clusters), key=lambda r: r["name"])
    return discovery(listeners), discovery(clusters)
