"""The checked reload of a plan: record the intent, replace the files, reload, check the result.

Crash safety: ``pending_reload`` is saved (synced) before the first file of the plan changes,
and cleared only once a new worker serves; the VIP files of the whole batch are written after
it, so a process killed anywhere in between leaves an intent that the next driver instance
finishes from the files alone (``probe`` reloads on every VIP file; ``verify`` reports
``PendingReload``). ``faults.point`` marks each step for the crash tests.

A reload HAProxy refuses anyway (the checks passed, yet a listener does not bind) is rolled
back: the files are put back, the old worker never stopped serving, and the caller gets a
:class:`~.process.ReloadFailed` whose error lines say which VIP was at fault.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from lbaas.drivers.deadline import budget
from lbaas.drivers.haproxy import faults, runtime, servers
from lbaas.drivers.haproxy.device import Device
from lbaas.drivers.haproxy.plan import Plan, Staging
from lbaas.drivers.haproxy.process import MIN_RELOAD_BUDGET, ReloadFailed
from lbaas.drivers.haproxy.render import Fragment
from lbaas.drivers.haproxy.runtime import CLIError, ProcInfo, ServerState
from lbaas.drivers.haproxy.store import DriverState, dump_tree
from lbaas.drivers.toolkit.files import atomic_write, read_text, write_many

log = logging.getLogger(__name__)


def reload(dev: Device, state: DriverState, master: ProcInfo | None, plan: Plan,
           changed: dict[Path, str], removed: list[Path], staging: Staging) -> None:  # fmt: skip
    """Record the intent, replace the files (``changed`` as staged by ``validate``), reload
    (or start); roll back a failed reload."""
    paths, supervisor = dev.paths, dev.supervisor
    trees = {dev.vip_path(k): dump_tree(lb) if lb else None for k, lb in plan.accepted.items()}
    previous = {path: read_text(path) for path in [*changed, *removed, *trees]}
    if master is not None:  # not enough time left: refuse before any file changes
        budget(dev.config.reload_timeout_seconds, "reloading HAProxy", MIN_RELOAD_BUDGET)
    old_parked = dict(state.parked)
    state.pending_reload, state.parked = True, plan.parked
    state.save(paths.state)
    dev.memo.changed()
    faults.point("after-intent")
    write_many({path: text for path, text in trees.items() if previous[path] != text}, 0o600)
    for key, lb in plan.accepted.items():
        if lb is not None and key in plan.included:
            dev.memo.wrote(dev.vip_path(key), lb, plan.included[key])
    faults.point("after-vip-file")
    if not paths.server_state.exists():
        atomic_write(paths.server_state, "1\n", 0o600)
    staging.install()
    write_many(dict.fromkeys(removed), durable=False)
    faults.point("after-config")
    if master is not None and not supervisor.needs_restart(master):
        faults.point("before-reload")
        try:
            with dev.memo.pace.fixed_part(reload=True):
                info = supervisor.reload(carried_health(plan))
        except ReloadFailed:
            write_many({path: previous[path] for path in trees}, 0o600)
            write_many({path: previous[path] for path in [*changed, *removed]}, 0o644)
            after = supervisor.master()
            state.pending_reload, state.parked = after is None, old_parked
            if after is not None:
                state.master_pid, state.master_reloads = after.master_pid, after.reloads
            state.save(paths.state)
            raise  # a timeout is not caught: the reload stays pending, the next call finishes it
        state.reloads += 1
    else:
        faults.point("before-reload")
        with dev.memo.pace.fixed_part(reload=True):
            info = supervisor.replace(master) if master is not None else supervisor.start()
        state.starts += 1
    faults.point("after-reload")
    state.pending_reload = False
    state.master_pid, state.master_reloads = info.master_pid, info.reloads
    state.save(paths.state)
    new = {key for key in plan.included if previous.get(dev.fragment_path(key), "") is None}
    with dev.memo.pace.fixed_part():
        reconcile(dev, {key: f for key, f in plan.included.items() if key not in new}, plan)


def carried_health(plan: Plan) -> Callable[[ServerState], bool]:
    """Which running servers' health a reload carries over: those that stay checked at the same
    address and port. A server without checks has no health to carry (restoring DOWN would keep
    it out for good: nothing would bring it back), and one moved elsewhere is a new server."""
    checked = {
        (backend.name, server.name): (server.address, server.port)
        for fragment in plan.included.values()
        for backend in fragment.backends
        for server in backend.servers
        if server.check
    }
    return lambda s: checked.get((s.backend, s.name)) == (s.address, s.port)


def reconcile(dev: Device, carried: dict[str, Fragment], plan: Plan) -> None:
    """Weights and states the server-state file carried over a reload, back to the files.

    Only VIPs served before the reload can have carried anything: a batch of new VIPs (a cold
    start) reads nothing back.
    """
    if not carried:
        return
    socket = dev.paths.runtime_socket
    view = runtime.Running(socket, len(carried), len(plan.included))
    backends = [backend for fragment in carried.values() for backend in fragment.backends]
    try:
        running = {}
        for backend in backends:
            with contextlib.suppress(runtime.NoSuchBackend):
                running[backend.name] = view.servers(backend.name)
        servers.reconcile(socket, backends, running)
    except CLIError as exc:
        log.warning("could not check runtime server values after a reload: %s", exc)
