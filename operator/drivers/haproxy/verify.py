"""What differs between a device and what it should serve (``verify``), and what it holds that
no VIP asked for (``orphans``).

``verify`` runs for every VIP once per resync interval, so it is cheap: the device-level checks
(a pending reload, the master and its reload count, ``haproxy.cfg``) are cached per device for
:data:`DEVICE_CHECK_TTL` seconds and dropped by the driver's own applies; the per-VIP checks
read two small files, render one fragment and send one runtime-API command per pool and
one per listener.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from lbaas.drivers.contract import Drift
from lbaas.drivers.errors import DriverError
from lbaas.drivers.haproxy import maps, runtime
from lbaas.drivers.haproxy.device import Device, checked_fragment
from lbaas.drivers.haproxy.names import proxy_key
from lbaas.drivers.haproxy.proxies import Backend
from lbaas.drivers.haproxy.render import Fragment, render_global
from lbaas.drivers.haproxy.runtime import CLIError, NoSuchBackend, ServerState
from lbaas.drivers.haproxy.store import DriverState, dump_tree, key_of
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.files import read_text

DEVICE_CHECK_TTL = 1.0
"""Seconds the device-level checks are reused. Short against any resync interval (a cached
"in sync" must not hide an edit for longer than the interval that promises to find it), long
enough that a device with thousands of VIPs checks itself about once a second, not per VIP."""
UNTRUSTED = ("NotRunning", "ReloadedOutsideOperator", "PendingReload", "OutdatedCommandLine")
"""Device drifts after which the running process says nothing about the files."""


def device_drift(dev: Device) -> list[Drift]:
    """Drifts of the device as a whole (cached, see the module docstring)."""
    cached = dev.memo.device_drift
    if cached is not None and time.monotonic() - cached[0] < DEVICE_CHECK_TTL:
        return cached[1]
    drifts = []
    state = DriverState.load(dev.paths.state)
    if state.pending_reload:
        drifts.append(Drift("PendingReload", "an apply was interrupted before HAProxy reloaded"))
    master = dev.supervisor.master()
    if master is None:
        drifts.append(Drift("NotRunning", "HAProxy is not running"))
    elif not state.matches(master.master_pid, master.reloads):
        drifts.append(
            Drift(
                "ReloadedOutsideOperator",
                f"HAProxy was reloaded or restarted outside the operator (master pid"
                f" {master.master_pid}, {master.reloads} reloads; the operator's last reload"
                f" left pid {state.master_pid}, {state.master_reloads} reloads)",
            )
        )
    elif dev.supervisor.needs_restart(master):
        drifts.append(
            Drift("OutdatedCommandLine", "HAProxy was started without conf.d/; it is replaced")
        )
    if read_text(dev.paths.config) != render_global(dev.settings):
        drifts.append(Drift("ConfigChanged", "haproxy.cfg differs from what the operator wrote"))
    dev.memo.device_drift = (time.monotonic(), drifts)
    return drifts


def verify(dev: Device, lb: LoadBalancer) -> list[Drift]:
    drifts = list(device_drift(dev))
    stored = read_text(dev.vip_path(lb.key))
    if stored is None:
        drifts.append(Drift("VIPFileMissing", "the device has no file for this VIP"))
    elif stored != dump_tree(lb):
        drifts.append(Drift("VIPFileOutdated", "the device's file for this VIP is not its spec"))
    try:
        fragment = checked_fragment(lb)
    except DriverError as exc:
        return [*drifts, Drift("NotApplicable", exc.user_message)]
    parked = DriverState.load(dev.paths.state).parked.get(lb.key)
    if parked is not None:
        return [*drifts, Drift("NotServed", f"left out of the device's configuration: {parked}")]
    on_disk = read_text(dev.fragment_path(lb.key))
    name = dev.fragment_path(lb.key).name
    if on_disk is None:
        drifts.append(Drift("ConfigMissing", f"conf.d/{name} is missing"))
    elif on_disk != fragment.text:
        drifts.append(Drift("ConfigChanged", f"conf.d/{name} is not what this VIP's spec gives"))
    elif stale := maps.changed(dev.paths.root, fragment.maps):  # the fragment is right
        names = ", ".join(m.name for m in stale)
        drifts.append(Drift("MapFileChanged", f"{names}: not what this VIP's policies give"))
    if any(d.kind in UNTRUSTED for d in drifts):
        return drifts
    return drifts + runtime_drift(dev, fragment)


def _server_problems(backend: Backend, running: dict[str, ServerState]) -> list[str]:
    problems = []
    wanted = backend.server_map()
    for name, want in wanted.items():
        have = running.get(name)
        if have is None:
            problems.append(f"server {name} is missing")
            continue
        if (have.address, have.port) != (want.address, want.port):
            problems.append(f"server {name} runs at {have.address}:{have.port}")
        if have.weight != want.weight:
            problems.append(f"server {name} has weight {have.weight}, not {want.weight}")
        if want.enabled and (have.in_maintenance or have.draining):
            problems.append(f"server {name} is in {'MAINT' if have.in_maintenance else 'DRAIN'}")
        elif not want.enabled and not have.in_maintenance:
            problems.append(f"server {name} is not in MAINT although its member is admin-down")
    return problems + [f"server {name} is no member" for name in running if name not in wanted]


def runtime_drift(dev: Device, fragment: Fragment) -> list[Drift]:
    """The running process against ``fragment``: each backend's servers, weights and states,
    each frontend's state. A missing backend says it all (the fragment is not loaded)."""
    socket = dev.paths.runtime_socket
    problems: list[str] = []
    absent: list[str] = []
    statuses: dict[str, str | None] = {}
    try:
        for backend in fragment.backends:
            try:
                running = runtime.servers_state(socket, backend.name, runtime.QUERY_TIMEOUT)
            except NoSuchBackend:
                absent.append(backend.name)
                continue
            problems += _server_problems(backend, running)
        if absent:
            return [Drift("BackendMissing", f"HAProxy runs no backend {', '.join(absent)}")]
        for frontend in fragment.frontends:
            statuses[frontend.name] = runtime.frontend_status(
                socket, frontend.name, runtime.QUERY_TIMEOUT
            )
        maps_changed = [
            m.name
            for m in fragment.maps
            if maps.running(socket, m.name, runtime.QUERY_TIMEOUT) != m.entries
        ]
    except CLIError as exc:
        raise DriverError("cannot read HAProxy's runtime state", detail=str(exc)) from exc
    drifts = []
    if problems:
        drifts.append(Drift("RuntimeChanged", "; ".join(problems)))
    if maps_changed:
        names = ", ".join(maps_changed)
        drifts.append(Drift("MapChanged", f"HAProxy's maps {names} differ from the policies"))
    for frontend in fragment.frontends:
        status = statuses[frontend.name]
        if status is None:
            # 2.6 lists no frontend its file disables: absent is what a disabled one looks like.
            if frontend.enabled:
                drifts.append(Drift("FrontendMissing", f"HAProxy runs no frontend {frontend.name}"))
        elif frontend.enabled != (status in ("OPEN", "FULL")):
            want = "listening" if frontend.enabled else "disabled"
            drifts.append(Drift("FrontendStateChanged", f"{frontend.name} is {status}, not {want}"))
    return drifts


def orphans(dev: Device, expected: Collection[str]) -> list[str]:
    """Keys of load balancers the device holds (a VIP file, a fragment, a running frontend or
    backend) that are not expected."""
    keys = {key_of(p) for p in dev.paths.vips.glob("*.json")}
    keys |= {key_of(p) for p in dev.paths.conf_d.glob("*.cfg")}
    if dev.supervisor.master() is not None:
        socket = dev.paths.runtime_socket
        try:
            names = runtime.backends(socket, runtime.QUERY_TIMEOUT)
            names += list(runtime.frontend_statuses(socket, runtime.QUERY_TIMEOUT))
        except CLIError as exc:
            raise DriverError("cannot list HAProxy's proxies", detail=str(exc)) from exc
        keys |= {key for key in map(proxy_key, names) if key is not None}
    return sorted(keys - set(expected))
