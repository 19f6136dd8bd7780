"""What differs between a device and what it should serve (``verify``), and what it holds that
no load balancer asked for (``orphans``).

``verify`` runs for every tree once per resync interval, so the device-wide part (is Envoy
running, what it runs: one ``/config_dump`` of listeners and clusters, one ``/clusters``) is
read at most once per :data:`VIEW_TTL` and dropped by the driver's own applies; the per-tree
part renders the tree (cached) and reads its small files.

Drift kinds: ``NotRunning``, ``BootstrapChanged``, ``TreeFileMissing``, ``TreeFileOutdated``,
``NotApplicable`` (the tree cannot be rendered), ``NotServed`` (left out, with why),
``ConfigChanged`` (the LDS, CDS or an EDS file on disk is not what the tree renders),
``CertificateMissing``/``CertificateChanged`` (an SDS file), ``ListenerMissing``/
``ClusterMissing``/``RuntimeChanged`` (Envoy runs another version than the files'),
``Refused`` (Envoy refused one of the tree's resources), ``EndpointsChanged`` (Envoy's hosts
of a pool are not its members).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from lbaas.drivers.contract import Drift
from lbaas.drivers.envoy.admin import AdminError
from lbaas.drivers.envoy.device import Device
from lbaas.drivers.envoy.render.bootstrap import render_bootstrap
from lbaas.drivers.envoy.render.names import key_of, key_of_stem
from lbaas.drivers.envoy.render.tree import Rendered, stamp_of
from lbaas.drivers.envoy.store import DriverState, dump_tree
from lbaas.drivers.envoy.view import RunningView, read_view
from lbaas.drivers.errors import DriverError
from lbaas.drivers.model import LoadBalancer, Sensitive
from lbaas.drivers.toolkit.files import read_text

VIEW_TTL = 1.0


def running_view(dev: Device) -> RunningView | None:
    """What Envoy runs (cached for VIEW_TTL), or None when it does not run."""
    cached = dev.memo.drift
    if cached is not None and time.monotonic() - cached[0] < VIEW_TTL:
        return cached[1]  # type: ignore[return-value]
    sock = dev.admin()
    view = None
    if sock is not None:
        try:
            view = read_view(sock)
        except AdminError as exc:
            raise DriverError(f"cannot read Envoy's configuration: {exc}") from exc
    dev.memo.drift = (time.monotonic(), view)
    return view


def _resources(text: str | None) -> dict[str, dict[str, Any]]:
    try:
        resources = json.loads(text or "{}").get("resources", [])
    except ValueError:
        return {}
    return {str(r.get("name")): r for r in resources if isinstance(r, dict)}


def _file_drifts(dev: Device, rendered: Rendered) -> list[Drift]:
    drifts = []
    for label, path, wanted in (("LDS", dev.paths.lds, rendered.listeners),
                                ("CDS", dev.paths.cds, rendered.clusters)):  # fmt: skip
        on_disk = _resources(read_text(path))
        for resource in wanted:
            if on_disk.get(resource["name"]) != resource:
                drifts.append(Drift("ConfigChanged", f"{label} file: {resource['name']} differs"))
    for file, text in rendered.endpoints.items():
        if read_text(dev.paths.eds / file) != text:
            drifts.append(Drift("ConfigChanged", f"EDS file {file} differs"))
    for file, wanted_secret in rendered.secrets.items():
        secret = read_text(dev.paths.sds / file)
        if secret is None:
            drifts.append(Drift("CertificateMissing", f"SDS file {file} is missing"))
        elif _key_fingerprint(secret) != rendered.key_fingerprints[file] or (
            wanted_secret is not None and secret != wanted_secret
        ):
            drifts.append(Drift("CertificateChanged", f"SDS file {file} differs"))
    return drifts


def _key_fingerprint(text: str) -> str | None:
    try:
        secret = json.loads(text)["resources"][0]["tls_certificate"]
        return Sensitive(secret["private_key"]["inline_string"]).fingerprint
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _running_drifts(view: RunningView, lb: LoadBalancer, rendered: Rendered) -> list[Drift]:
    drifts = []
    kinds = (("ListenerMissing", view.listeners, rendered.listeners),
             ("ClusterMissing", view.clusters, rendered.clusters))  # fmt: skip
    for missing, running, wanted in kinds:
        for resource in wanted:
            name = resource["name"]
            if name in view.refused:
                drifts.append(Drift("Refused", f"Envoy refused {name}: {view.refused[name]}"))
            elif name not in running:
                drifts.append(Drift(missing, f"Envoy does not run {name}"))
            elif running[name] != stamp_of(resource):
                drifts.append(Drift("RuntimeChanged", f"Envoy runs another version of {name}"))
    for resource in rendered.clusters:
        hosts = view.hosts.get(resource["name"])
        if hosts is None:
            continue
        assignment = rendered.assignments[resource["name"]]
        members = {
            e["endpoint"]["hostname"]: (
                e["endpoint"]["address"]["socket_address"]["address"],
                e["endpoint"]["address"]["socket_address"]["port_value"],
                e["load_balancing_weight"],
                level.get("priority", 0),
            )
            for level in assignment["endpoints"]
            for e in level["lb_endpoints"]
        }
        have = {n: (h.address, h.port, h.weight, h.priority) for n, h in hosts.items()}
        if have != members:
            drifts.append(
                Drift(
                    "EndpointsChanged", f"Envoy's hosts of {resource['name']} are not its members"
                )
            )
    return drifts


def verify(dev: Device, lb: LoadBalancer) -> list[Drift]:
    drifts = []
    view = running_view(dev)
    if view is None:
        drifts.append(Drift("NotRunning", "Envoy is not running"))
    if read_text(dev.paths.bootstrap) != render_bootstrap(dev.paths, dev.name):
        drifts.append(Drift("BootstrapChanged", "bootstrap.json is not what the driver wrote"))
    stored = read_text(dev.tree_path(lb.key))
    if stored is None:
        drifts.append(Drift("TreeFileMissing", "the device has no file for this load balancer"))
    elif stored != dump_tree(lb):
        drifts.append(Drift("TreeFileOutdated", "the device's tree file is not this tree"))
    try:
        rendered = dev.render(lb)
    except DriverError as exc:
        return [*drifts, Drift("NotApplicable", exc.user_message)]
    parked = DriverState.load(dev.paths.state).parked.get(lb.key)
    if parked is not None:
        return [*drifts, Drift("NotServed", f"left out of the device's files: {parked}")]
    drifts += _file_drifts(dev, rendered)
    if view is not None:
        drifts += _running_drifts(view, lb, rendered)
    return drifts


def orphans(dev: Device, expected: Collection[str]) -> list[str]:
    """Keys the device holds (tree files, resources in its files or in Envoy) not expected."""
    keys = {key_of_stem(p.stem) for p in dev.paths.trees.glob("*.json")}
    for path in (dev.paths.lds, dev.paths.cds):
        keys |= {k for name in _resources(read_text(path)) if (k := key_of(name))}
    view = running_view(dev)
    if view is not None:
        keys |= {k for name in (*view.listeners, *view.clusters) if (k := key_of(name))}
    return sorted(keys - set(expected))
