"""Make a device serve what its VIP files say, after one VIP changed.

Two ways, chosen per change:

- **At run time** (no reload, no ``haproxy -c``): when the running master is the one the driver
  last reloaded, no reload is pending, and the VIP's new fragment has the structure of the one
  on disk (only servers, weights or admin states differ). The runtime commands go first, then
  the VIP file and the fragment are written, so that a later reload keeps the change; a process
  killed in between leaves a difference that ``verify`` sees and the next apply repairs.
- **By a checked reload** otherwise: every VIP file is rendered again (a VIP that cannot be
  served is left out and remembered in ``parked``), every listener that HAProxy does not hold
  yet is tried (``preflight``), the changed files are validated together with ``haproxy -c``,
  ``pending_reload`` is recorded, the files are replaced, and HAProxy reloads. A refusal of the
  VIP being applied raises before any of this changes anything; a reload that fails anyway is
  rolled back (files restored, the old worker never stopped serving).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lbaas.drivers.base import Drift, DriverError, LoadBalancer, UnsupportedError
from lbaas.drivers.haproxy import faults, runtime, servers
from lbaas.drivers.haproxy.config import DevicePaths, HAProxyDeviceConfig
from lbaas.drivers.haproxy.preflight import Preflight
from lbaas.drivers.haproxy.process import MIN_RELOAD_BUDGET, ConfigRejected, Supervisor
from lbaas.drivers.haproxy.render import (
    Fragment,
    GlobalSettings,
    fragment_servers,
    fragment_structure,
    render_global,
    render_vip,
)
from lbaas.drivers.haproxy.runtime import CLIError, ProcInfo
from lbaas.drivers.haproxy.store import (
    DriverState,
    TreeCache,
    atomic_write,
    dump_tree,
    file_stem,
    key_of,
    read_text,
    restore,
)
from lbaas.drivers.haproxy.timing import budget
from lbaas.drivers.haproxy.tokens import UnsafeValueError

log = logging.getLogger(__name__)
MAX_BLAME_ROUNDS = 3


@dataclass
class Memo:
    """What one driver instance remembers about one device between calls (never needed for
    correctness: a new instance starts empty)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    trees: TreeCache = field(default_factory=TreeCache)
    rendered: dict[int, tuple[LoadBalancer, Fragment]] = field(default_factory=dict)
    device_drift: tuple[float, list[Drift]] | None = None

    def fragment(self, lb: LoadBalancer) -> Fragment:
        """``render_vip`` of a tree from the TreeCache, cached while that object lives."""
        cached = self.rendered.get(id(lb))
        if cached is not None and cached[0] is lb:
            return cached[1]
        fragment = render_vip(lb)
        if len(self.rendered) > 4096:
            self.rendered.clear()
        self.rendered[id(lb)] = (lb, fragment)
        return fragment

    def changed(self) -> None:
        """Our own apply changed the device: cached device-level checks are stale."""
        self.device_drift = None


@dataclass
class Device:
    """One call's view of a device (built under its locks by the driver)."""

    config: HAProxyDeviceConfig
    paths: DevicePaths
    supervisor: Supervisor
    memo: Memo

    @property
    def settings(self) -> GlobalSettings:
        return GlobalSettings(
            runtime_socket=str(self.paths.runtime_socket),
            server_state_file=str(self.paths.server_state),
            hard_stop_after=self.config.hard_stop_after_seconds,
        )

    def fragment_path(self, key: str) -> Path:
        return self.paths.conf_d / f"{file_stem(key)}.cfg"

    def vip_path(self, key: str) -> Path:
        return self.paths.vips / f"{file_stem(key)}.json"


def checked_fragment(lb: LoadBalancer) -> Fragment:
    """``render_vip`` with its refusals as the driver's non-retryable errors."""
    try:
        return render_vip(lb)
    except UnsafeValueError as exc:
        raise DriverError(str(exc), retryable=False, reason="InvalidConfiguration") from exc


def in_sync(dev: Device, state: DriverState, master: ProcInfo | None) -> bool:
    """The running HAProxy loaded what the files held at the driver's last reload."""
    return (
        master is not None
        and not state.pending_reload
        and state.matches(master.master_pid, master.reloads)
        and not dev.supervisor.needs_restart(master)
    )


def converge(dev: Device, key: str | None, lb: LoadBalancer | None) -> None:
    """Make the device serve ``lb`` as VIP ``key`` (``lb`` None: nothing for ``key``; ``key``
    None: no VIP changes, start HAProxy or finish a pending reload) and the others as their
    files say."""
    fragment = checked_fragment(lb) if lb is not None else None
    state = DriverState.load(dev.paths.state)
    master = dev.supervisor.master()
    if master is None and not dev.config.managed:
        dev.supervisor.start()  # raises HAProxyNotRunning, before anything is written
    if in_sync(dev, state, master) and key is not None:
        if fragment is not None and lb is not None:
            if _runtime_apply(dev, state, fragment, dump_tree(lb)):
                return
        elif not dev.fragment_path(key).exists():
            _forget(dev, state, key)
            return
    _reload_apply(dev, state, master, key, lb, fragment)


def _write(path: Path, text: str | None, mode: int = 0o600, durable: bool = True) -> bool:
    """Replace (or, for None, remove) ``path`` unless it already holds ``text``."""
    if read_text(path) == text:
        return False
    if text is None:
        restore(path, None)
    else:
        atomic_write(path, text, mode, durable)
    return True


def _runtime_apply(dev: Device, state: DriverState, fragment: Fragment, tree: str) -> bool:
    """Apply ``fragment`` through the runtime API; False when only a reload can."""
    old = read_text(dev.fragment_path(fragment.key))
    if old is None or fragment_structure(old) != fragment.structure:
        return False
    if read_text(dev.paths.config) != render_global(dev.settings):
        return False
    socket = dev.paths.runtime_socket
    try:
        running = runtime.servers_state(socket, fragment.backend)
        ops = servers.plan(fragment, fragment_servers(old), running)
        if ops is None or not _frontend_state(socket, fragment):
            return False
        servers.execute(socket, ops)
    except CLIError as exc:
        log.warning("runtime change of %s failed, reloading instead: %s", fragment.key, exc)
        return False
    wrote = _write(dev.vip_path(fragment.key), tree)
    faults.point("after-vip-file")
    # conf.d is rendered again from the VIP files at every start: no sync needed.
    wrote = _write(dev.fragment_path(fragment.key), fragment.text, 0o644, False) or wrote
    faults.point("after-config")
    if ops or wrote:
        state.runtime_updates += 1
        state.save(dev.paths.state, durable=False)
    dev.memo.changed()
    return True


def _frontend_state(socket: Path, fragment: Fragment) -> bool:
    """Undo a ``disable frontend`` sent by hand; False when only a reload can help (a frontend
    shut down, or one the file disables that listens)."""
    status = runtime.frontend_status(socket, fragment.frontend)
    if status in ("OPEN", "FULL"):
        return fragment.enabled
    if status is None or not fragment.enabled:
        return status is not None
    runtime.expect_empty(socket, f"enable frontend {fragment.frontend}")
    return True


def _forget(dev: Device, state: DriverState, key: str) -> None:
    """Delete a VIP HAProxy does not serve (parked, or absent): its file only, no reload."""
    _write(dev.vip_path(key), None)
    if state.parked.pop(key, None) is not None:
        state.save(dev.paths.state)
    dev.memo.changed()


@dataclass
class _Plan:
    included: dict[str, Fragment]
    parked: dict[str, str]


def _plan(dev: Device, key: str | None, lb: LoadBalancer | None, fragment: Fragment | None,
          master: ProcInfo | None, skip: dict[str, str]) -> _Plan:  # fmt: skip
    """Which VIPs the new configuration serves; raises when ``lb`` itself cannot be."""
    trees, broken = dev.memo.trees.load_all(dev.paths.vips)
    if key is not None:
        trees.pop(key, None)
        broken.pop(key, None)
    parked = {**broken, **{k: v for k, v in skip.items() if k != key}}
    served = {key_of(p) for p in dev.paths.conf_d.glob("*.cfg")}
    # Served VIPs keep their listeners; then the rest by key; the applied VIP last.
    order = sorted(trees, key=lambda k: (k not in served, k))
    preflight = Preflight(dev.paths.root, master.master_pid if master else None)
    included: dict[str, Fragment] = {}
    owners: dict[tuple[str, int], str] = {}

    def admit(vip: str, candidate: Fragment) -> DriverError | None:
        other = owners.get(candidate.listener)
        if other is not None:
            return DriverError(
                f"{candidate.address}:{candidate.port} is already used by VIP {other} on"
                " this device",
                retryable=False,
                reason="AddressInUse",
            )
        if candidate.enabled and (problem := preflight.problem(*candidate.listener)):
            return problem
        owners[candidate.listener] = vip
        included[vip] = candidate
        return None

    for vip in order:
        if vip in parked:
            continue
        try:
            candidate = dev.memo.fragment(trees[vip])
        except (UnsafeValueError, UnsupportedError) as exc:
            parked[vip] = str(exc)
            continue
        if problem := admit(vip, candidate):
            parked[vip] = problem.user_message
    if key is not None and fragment is not None and (problem := admit(key, fragment)):
        raise problem
    return _Plan(included, parked)


def _files(dev: Device, plan: _Plan) -> tuple[dict[Path, str], list[Path]]:
    """(files to write → text, files to remove) for ``plan``."""
    desired = {dev.paths.config: render_global(dev.settings)}
    desired |= {dev.fragment_path(k): f.text for k, f in plan.included.items()}
    changed = {path: text for path, text in desired.items() if read_text(path) != text}
    removed = [p for p in dev.paths.conf_d.glob("*.cfg") if p not in desired]
    return changed, removed


def _stage(changed: dict[Path, str]) -> dict[Path, Path]:
    """Write each changed file beside its final path under a name HAProxy does not load."""
    staged = {}
    for path, text in changed.items():
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(name, 0o644)
        staged[path] = Path(name)
    return staged


def _blame(dev: Device, exc: ConfigRejected, staged: dict[Path, Path]) -> set[str]:
    """VIP keys that HAProxy's error lines point at (by file, or by proxy name)."""
    names = {str(tmp): final for final, tmp in staged.items()}
    keys = set()
    for alert in exc.alerts:
        for match in re.finditer(r"parsing \[([^:\]]+):\d+\]", alert):
            path = Path(names.get(match[1], match[1]))
            if path.parent == dev.paths.conf_d:
                keys.add(key_of(path))
        for match in re.finditer(r"'(?:fe|be)_([a-z0-9-]+)__([a-z0-9.-]+)'", alert):
            keys.add(f"{match[1]}/{match[2]}")
    return keys


def _validate(dev: Device, plan: _Plan, key: str | None) -> tuple[dict[Path, str], list[Path]]:
    """``haproxy -c`` the plan's files; leave out other VIPs HAProxy blames, refuse ``key``."""
    for _ in range(MAX_BLAME_ROUNDS):
        changed, removed = _files(dev, plan)
        if not changed and not removed:
            return changed, removed
        staged = _stage(changed)
        try:
            final = [dev.paths.config, *sorted(dev.fragment_path(k) for k in plan.included)]
            dev.supervisor.check([staged.get(p, p) for p in final])
            return changed, removed
        except ConfigRejected as exc:
            blamed = _blame(dev, exc, staged)
            if key in blamed or not blamed:
                raise
            for vip in blamed:
                if plan.included.pop(vip, None) is not None:
                    plan.parked[vip] = exc.user_message
        finally:
            for tmp in staged.values():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
    raise DriverError("HAProxy keeps rejecting the configuration", reason="InvalidConfiguration")


def _reload_apply(dev: Device, state: DriverState, master: ProcInfo | None, key: str | None,
                  lb: LoadBalancer | None, fragment: Fragment | None) -> None:  # fmt: skip
    sync = in_sync(dev, state, master)
    plan = _plan(dev, key, lb, fragment, master, {})
    changed, removed = _validate(dev, plan, key)
    vip_text = dump_tree(lb) if lb is not None else None
    # With a tree to apply, the runtime path was declined although the files may match (the
    # runtime API refused a command): only a reload brings the servers back to the files.
    if sync and not changed and not removed and fragment is None:
        if key is not None:
            _write(dev.vip_path(key), vip_text)
        if plan.parked != state.parked:
            state.parked = plan.parked
            state.save(dev.paths.state)
        dev.memo.changed()
        return
    _reload(dev, state, master, key, vip_text, plan, changed, removed)


def _reload(dev: Device, state: DriverState, master: ProcInfo | None, key: str | None,
            vip_text: str | None, plan: _Plan, changed: dict[Path, str],
            removed: list[Path]) -> None:  # fmt: skip
    """Record the intent, replace the files, reload (or start); roll back a failed reload."""
    paths, supervisor = dev.paths, dev.supervisor
    if master is not None:  # not enough time left: refuse before any file changes
        budget(dev.config.reload_timeout_seconds, "reloading HAProxy", MIN_RELOAD_BUDGET)
    touched = list(changed) + removed + ([dev.vip_path(key)] if key is not None else [])
    previous = {path: read_text(path) for path in touched}
    old_parked = dict(state.parked)
    state.pending_reload, state.parked = True, plan.parked
    state.save(paths.state)
    dev.memo.changed()
    faults.point("after-intent")
    if key is not None:
        _write(dev.vip_path(key), vip_text)
    faults.point("after-vip-file")
    if not paths.server_state.exists():
        atomic_write(paths.server_state, "1\n", 0o600)
    for path, text in changed.items():
        atomic_write(path, text, 0o644, durable=False)  # rendered again at start
    for path in removed:
        restore(path, None)
    faults.point("after-config")
    if master is not None and not supervisor.needs_restart(master):
        faults.point("before-reload")
        try:
            info = supervisor.reload()
        except DriverError as exc:
            if exc.reason != "ReloadFailed":
                raise  # timed out: the reload stays pending, the next call finishes it
            for path, old_text in previous.items():
                restore(path, old_text)
            after = supervisor.master()
            state.pending_reload, state.parked = after is None, old_parked
            if after is not None:
                state.master_pid, state.master_reloads = after.master_pid, after.reloads
            state.save(paths.state)
            raise
        state.reloads += 1
    else:
        faults.point("before-reload")
        info = supervisor.replace(master) if master is not None else supervisor.start()
        state.starts += 1
    faults.point("after-reload")
    state.pending_reload = False
    state.master_pid, state.master_reloads = info.master_pid, info.reloads
    state.save(paths.state)
    _reconcile(dev, plan)


def _reconcile(dev: Device, plan: _Plan) -> None:
    """Weights and states the server-state file carried over a reload, back to the files."""
    try:
        running = runtime.all_servers_state(dev.paths.runtime_socket)
        servers.reconcile(dev.paths.runtime_socket, plan.included, running)
    except CLIError as exc:
        log.warning("could not check runtime server values after a reload: %s", exc)
