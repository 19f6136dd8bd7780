"""The part of a batch the running HAProxy takes without a reload (and without ``haproxy -c``).

A VIP goes this way when the running master is the one the driver last reloaded, no reload is
pending, ``haproxy.cfg`` is the driver's, and the VIP's new fragment has the structure of the
one on disk: only servers, weights or admin states differ, in any of its pools (``servers``
plans the commands of each backend), or the entries of its L7 map files (``maps``: Forward
policies by host and path added, changed or removed, weighted splits re-weighted).
A deletion goes this way when HAProxy does not serve the VIP (parked, or never applied): only
its file is removed.

All the batch's runtime commands go first, then its VIP files and fragments are written (each
set synced once), so that a later reload keeps the changes; a process killed in between leaves
a difference that ``verify`` sees and the next apply repairs. A batch that is a good part of
the device reads the running servers and frontends of the whole device once (two commands)
instead of two commands per VIP (``runtime.Running``). A VIP whose command HAProxy refuses
is left to the reload; the call's deadline stops the batch where it is, and what was done
stays done.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lbaas.drivers.errors import DriverError
from lbaas.drivers.haproxy import faults, maps, runtime, servers
from lbaas.drivers.haproxy.device import Device
from lbaas.drivers.haproxy.plan import Change
from lbaas.drivers.haproxy.proxies import Frontend
from lbaas.drivers.haproxy.render import (
    Fragment,
    fragment_servers,
    fragment_structure,
    render_global,
)
from lbaas.drivers.haproxy.runtime import CLIError, Running
from lbaas.drivers.haproxy.store import DriverState, dump_tree
from lbaas.drivers.toolkit.files import read_text, write_many

log = logging.getLogger(__name__)


def runtime_batch(
    dev: Device, state: DriverState, batch: dict[str, Change]
) -> tuple[set[str], DriverError | None]:
    """Apply what of ``batch`` needs no reload: (keys done, the device error that stopped the
    batch early or None). The keys not done are left to the reload."""
    done: set[str] = set()
    trees: dict[Path, str | None] = {}
    fragments: dict[Path, str] = {}
    map_files: dict[Path, str] = {}
    forgotten: list[str] = []
    updates, error = 0, None
    ours = read_text(dev.paths.config) == render_global(dev.settings)
    applies = sum(fragment is not None for _, fragment in batch.values())
    served = sum(1 for _ in dev.paths.conf_d.glob("*.cfg")) if applies >= runtime.BULK_MIN else 0
    view = Running(dev.paths.runtime_socket, applies, served)
    for key, (lb, fragment) in batch.items():
        if lb is None or fragment is None:
            if not dev.fragment_path(key).exists():  # not served: its file only, no reload
                trees[dev.vip_path(key)] = None
                forgotten.append(key)
                done.add(key)
            continue
        if not ours:
            continue
        try:
            ops = _apply(
                view, fragment, read_text(dev.fragment_path(key)), dev.paths.root, map_files
            )
        except DriverError as exc:  # the deadline (CLI refusals are handled in _apply)
            error = exc
            break
        if ops is None:
            continue
        done.add(key)
        tree, wrote = dump_tree(lb), False
        if read_text(dev.vip_path(key)) != tree:
            trees[dev.vip_path(key)], wrote = tree, True
        if read_text(dev.fragment_path(key)) != fragment.text:
            fragments[dev.fragment_path(key)], wrote = fragment.text, True
        updates += bool(ops or wrote)
    write_many(trees, 0o600)
    for key in done - set(forgotten):
        lb, fragment = batch[key]
        if lb is not None and fragment is not None and dev.vip_path(key) in trees:
            dev.memo.wrote(dev.vip_path(key), lb, fragment)
    if len(done) > len(forgotten):
        faults.point("after-vip-file")
    # conf.d and maps/ are rendered again from the VIP files at every start: no sync needed.
    write_many(map_files, 0o644, durable=False)
    write_many(fragments, 0o644, durable=False)
    if len(done) > len(forgotten):
        faults.point("after-config")
    unparked = [key for key in forgotten if state.parked.pop(key, None) is not None]
    if updates or unparked:
        state.runtime_updates += updates
        state.save(dev.paths.state, durable=bool(unparked))
    dev.memo.changed()
    return done, error


def _apply(
    view: Running, fragment: Fragment, old: str | None, root: Path, written: dict[Path, str]
) -> list[servers.Op | Path] | None:
    """Send the runtime commands that make the running load balancer match ``fragment``
    (``old``: its fragment on disk), every backend (pool) planned on its own, then its map
    files (those to write go to ``written``); None when only a reload can."""
    if old is None or fragment_structure(old) != fragment.structure:
        return None
    on_disk = fragment_servers(old)
    ops: list[servers.Op] = []
    try:
        for backend in fragment.backends:
            running = view.servers(backend.name)
            found = servers.plan(backend, on_disk.get(backend.name, {}), running)
            if found is None:
                return None
            ops += found
        if not all(_frontend_state(view, frontend) for frontend in fragment.frontends):
            return None
        servers.execute(view.socket, ops)
        synced = maps.sync(view.socket, root, fragment.maps)
    except CLIError as exc:
        log.warning("runtime change of %s failed, reloading instead: %s", fragment.key, exc)
        return None
    written |= synced
    return [*ops, *synced]


def _frontend_state(view: Running, frontend: Frontend) -> bool:
    """Undo a ``disable frontend`` sent by hand; False when only a reload can help (a frontend
    shut down, or one the file disables that listens). HAProxy 2.6 lists no frontend that its
    file disables: absent is right for a disabled one."""
    status = view.frontend(frontend.name)
    if status in ("OPEN", "FULL"):
        return frontend.enabled
    if not frontend.enabled:
        return True
    if status is None:
        return False
    runtime.expect_empty(view.socket, f"enable frontend {frontend.name}")
    return True
