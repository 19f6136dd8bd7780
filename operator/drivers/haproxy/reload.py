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

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lbaas.drivers.haproxy import faults, runtime, servers
from lbaas.drivers.haproxy.plan import Plan
from lbaas.drivers.haproxy.process import MIN_RELOAD_BUDGET, ReloadFailed
from lbaas.drivers.haproxy.runtime import CLIError, ProcInfo
from lbaas.drivers.haproxy.store import DriverState, atomic_write, dump_tree, read_text, write_many
from lbaas.drivers.haproxy.timing import budget

if TYPE_CHECKING:
    from lbaas.drivers.haproxy.converge import Device

log = logging.getLogger(__name__)


def reload(dev: Device, state: DriverState, master: ProcInfo | None, plan: Plan,
           changed: dict[Path, str], removed: list[Path]) -> None:  # fmt: skip
    """Record the intent, replace the files, reload (or start); roll back a failed reload."""
    paths, supervisor = dev.paths, dev.supervisor
    if master is not None:  # not enough time left: refuse before any file changes
        budget(dev.config.reload_timeout_seconds, "reloading HAProxy", MIN_RELOAD_BUDGET)
    trees = {dev.vip_path(k): dump_tree(lb) if lb else None for k, lb in plan.accepted.items()}
    previous = {path: read_text(path) for path in [*changed, *removed, *trees]}
    old_parked = dict(state.parked)
    state.pending_reload, state.parked = True, plan.parked
    state.save(paths.state)
    dev.memo.changed()
    faults.point("after-intent")
    write_many({path: text for path, text in trees.items() if previous[path] != text}, 0o600)
    faults.point("after-vip-file")
    if not paths.server_state.exists():
        atomic_write(paths.server_state, "1\n", 0o600)
    # conf.d is rendered again from the VIP files at every start: no sync needed.
    write_many({**changed, **dict.fromkeys(removed)}, 0o644, durable=False)
    faults.point("after-config")
    if master is not None and not supervisor.needs_restart(master):
        faults.point("before-reload")
        try:
            info = supervisor.reload()
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
        info = supervisor.replace(master) if master is not None else supervisor.start()
        state.starts += 1
    faults.point("after-reload")
    state.pending_reload = False
    state.master_pid, state.master_reloads = info.master_pid, info.reloads
    state.save(paths.state)
    reconcile(dev, plan)


def reconcile(dev: Device, plan: Plan) -> None:
    """Weights and states the server-state file carried over a reload, back to the files."""
    try:
        running = runtime.all_servers_state(dev.paths.runtime_socket)
        servers.reconcile(dev.paths.runtime_socket, plan.included, running)
    except CLIError as exc:
        log.warning("could not check runtime server values after a reload: %s", exc)
