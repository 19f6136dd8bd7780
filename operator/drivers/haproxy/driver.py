"""HAProxyDriver: the reference driver, one HAProxy master per Device.

An apply renders the configuration from every VIP bound to the device (the VIP files in the
state dir plus the tree being applied), validates it with ``haproxy -c`` and then either
pushes runtime-only differences (member weight, admin state) through the runtime API or
writes the file and reloads hitlessly. The VIP file is written only once its tree has been
validated, so one bad VIP can never poison the device for the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lbaas.api.member import MemberOperatingStatus
from lbaas.drivers.base import DeviceHandle, Driver, DriverError, LoadBalancer, ProbeResult
from lbaas.drivers.haproxy import runtime
from lbaas.drivers.haproxy.config import DevicePaths, HAProxyDeviceConfig, parse_config
from lbaas.drivers.haproxy.process import Supervisor
from lbaas.drivers.haproxy.render import (
    GlobalSettings,
    Rendered,
    ServerRuntime,
    backend_name,
    render,
    unsupported_reason,
)
from lbaas.drivers.haproxy.runtime import CLIError, ServerStat
from lbaas.drivers.haproxy.store import (
    DriverState,
    TreeCache,
    atomic_write,
    dump_tree,
    read_text,
    restore,
    vip_file,
)
from lbaas.drivers.haproxy.tokens import UnsafeValueError

log = logging.getLogger(__name__)


@dataclass
class _Device:
    config: HAProxyDeviceConfig
    paths: DevicePaths
    supervisor: Supervisor
    cache: TreeCache


@dataclass(frozen=True)
class _Change:
    """The VIP file an operation changes: new text, or None to remove it."""

    path: Path
    text: str | None


def operating_status(stat: ServerStat) -> MemberOperatingStatus:
    """HAProxy's server status (``show stat``) as a member operating status."""
    status = stat.status.upper()
    if status.startswith("MAINT"):
        return MemberOperatingStatus.OFFLINE
    if status.startswith("DOWN"):
        return MemberOperatingStatus.ERROR
    if status.startswith(("DRAIN", "NOLB")) or stat.weight == 0:
        return MemberOperatingStatus.DRAINING
    if status.startswith("UP"):
        return MemberOperatingStatus.ONLINE
    return MemberOperatingStatus.NO_MONITOR


class HAProxyDriver(Driver):
    """See the package docstring for the device config and the mapping to HAProxy."""

    supported_protocols = frozenset({"TCP", "HTTP", "HTTPS"})

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._caches: dict[str, TreeCache] = {}

    # -- contract -------------------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> None:
        parse_config(config)

    def supports(self, lb: LoadBalancer) -> str | None:
        return super().supports(lb) or unsupported_reason(lb)

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        with self._device(device) as dev:
            trees = self._trees(dev)
            trees[lb.key] = lb
            rendered = self._render(dev, list(trees.values()))
            self._converge(dev, rendered, _Change(vip_file(dev.paths.vips, lb), dump_tree(lb)))

    def delete(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        with self._device(device) as dev:
            trees = self._trees(dev)
            trees.pop(lb.key, None)
            rendered = self._render(dev, list(trees.values()))
            self._converge(dev, rendered, _Change(vip_file(dev.paths.vips, lb), None))

    def probe(self, device: DeviceHandle) -> ProbeResult:
        try:
            with self._device(device) as dev:
                master = dev.supervisor.master()
                if master is None:
                    if not dev.config.managed:
                        return ProbeResult(
                            False,
                            f"HAProxy master socket {dev.paths.master_socket} does not answer"
                            " (unmanaged device: HAProxy must be started outside the operator)",
                        )
                    rendered = self._render(dev, list(self._trees(dev).values()))
                    self._converge(dev, rendered, None)
                    master = dev.supervisor.master()
                    if master is None:
                        return ProbeResult(False, "HAProxy was started but does not answer")
        except DriverError as exc:
            return ProbeResult(False, exc.user_message)
        workers = ", ".join(str(pid) for pid in master.current_workers) or "none"
        return ProbeResult(True, f"HAProxy master pid {master.master_pid}, workers {workers}")

    def member_status(
        self, device: DeviceHandle, lb: LoadBalancer
    ) -> Mapping[str, MemberOperatingStatus]:
        if lb.pool is None:
            return {}
        if not lb.pool.admin_state_up:
            return {m.name: MemberOperatingStatus.OFFLINE for m in lb.members}
        paths = parse_config(device.config).paths()
        try:
            stats = runtime.show_stat(paths.runtime_socket, backend_name(lb))
        except CLIError as exc:
            raise DriverError(
                "cannot read member status: HAProxy's runtime API does not answer",
                detail=str(exc),
            ) from exc
        return {m.name: operating_status(stats[m.name]) for m in lb.members if m.name in stats}

    # -- introspection (tests, tooling) ---------------------------------------------------

    def state(self, device: DeviceHandle) -> DriverState:
        """Counters (``reloads``, ``starts``, ``runtime_updates``) and last applied values."""
        return DriverState.load(parse_config(device.config).paths().state)

    def reload_count(self, device: DeviceHandle) -> int:
        return self.state(device).reloads

    # -- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _device(self, device: DeviceHandle) -> Iterator[_Device]:
        """Serialise work on one device: a thread lock, and a file lock against another
        operator process (an old one still shutting down) using the same state dir."""
        config = parse_config(device.config)
        paths = config.paths()
        with self._guard:
            lock = self._locks.setdefault(config.state_dir, threading.Lock())
            cache = self._caches.setdefault(config.state_dir, TreeCache())
        with lock:
            try:
                paths.vips.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise DriverError(
                    f"cannot create stateDir {paths.root}: {exc.strerror}",
                    retryable=False,
                    reason="InvalidConfig",
                ) from exc
            with paths.lock.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield _Device(config, paths, Supervisor(config), cache)
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _trees(self, dev: _Device) -> dict[str, LoadBalancer]:
        try:
            return dev.cache.load_all(dev.paths.vips)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise DriverError(
                f"a VIP file in {dev.paths.vips} is unreadable; fix or remove it",
                detail=str(exc),
                retryable=False,
                reason="CorruptState",
            ) from exc

    def _render(self, dev: _Device, lbs: Sequence[LoadBalancer]) -> Rendered:
        settings = GlobalSettings(
            runtime_socket=str(dev.paths.runtime_socket),
            server_state_file=str(dev.paths.server_state),
            hard_stop_after=dev.config.hard_stop_after_seconds,
        )
        try:
            return render(lbs, settings)
        except UnsafeValueError as exc:
            raise DriverError(str(exc), retryable=False, reason="InvalidConfiguration") from exc

    def _converge(self, dev: _Device, rendered: Rendered, change: _Change | None) -> None:
        """Make the running HAProxy serve ``rendered``, then record ``change``'s VIP file.

        A failure leaves the previous configuration file, VIP file and processes in place.
        """
        paths, supervisor = dev.paths, dev.supervisor
        state = DriverState.load(paths.state)
        old_config = read_text(paths.config)
        old_tree = read_text(change.path) if change else None
        master = supervisor.master()
        if master is not None and rendered.text == old_config and not state.pending_reload:
            self._record(change, old_tree)
            return
        if not paths.server_state.exists():
            atomic_write(paths.server_state, "1\n", 0o600)
        candidate = self._validated_candidate(dev, rendered.text)
        try:
            if (
                master is not None
                and not state.pending_reload
                and rendered.structure == state.structure
            ):
                try:
                    self._push_runtime(dev, state.runtime(), rendered.servers)
                except CLIError as exc:
                    log.warning("runtime update failed, reloading instead: %s", exc)
                else:
                    os.replace(candidate, paths.config)
                    self._record(change, old_tree)
                    state.runtime_updates += 1
                    state.set_runtime(rendered.servers)
                    state.save(paths.state)
                    return
            keep_state = True
            if master is not None:
                # The server-state file must carry the new weights and admin states, or
                # HAProxy would prefer the dumped ones over an unchanged-looking config.
                try:
                    self._push_runtime(dev, state.runtime(), rendered.servers, existing_only=True)
                except CLIError:
                    keep_state = False
            os.replace(candidate, paths.config)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(candidate)
        self._record(change, old_tree)
        try:
            if master is not None:
                supervisor.reload(keep_server_state=keep_state)
                state.reloads += 1
            else:
                supervisor.start()
                state.starts += 1
        except DriverError:
            restore(paths.config, old_config)
            if change is not None:
                restore(change.path, old_tree)
            state.pending_reload = True
            state.save(paths.state)
            raise
        state.structure = rendered.structure
        state.set_runtime(rendered.servers)
        state.pending_reload = False
        state.save(paths.state)

    def _validated_candidate(self, dev: _Device, text: str) -> Path:
        fd, name = tempfile.mkstemp(dir=dev.paths.root, prefix=".haproxy.cfg.", suffix=".new")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(name, 0o644)
        candidate = Path(name)
        try:
            dev.supervisor.check(candidate)
        except BaseException:
            candidate.unlink()
            raise
        return candidate

    @staticmethod
    def _record(change: _Change | None, old_text: str | None) -> None:
        if change is None or change.text == old_text:
            return
        if change.text is None:
            restore(change.path, None)
        else:
            atomic_write(change.path, change.text, 0o600)

    @staticmethod
    def _push_runtime(
        dev: _Device,
        old: Mapping[str, ServerRuntime],
        new: Mapping[str, ServerRuntime],
        existing_only: bool = False,
    ) -> None:
        for key, value in new.items():
            previous = old.get(key)
            if previous == value or (existing_only and previous is None):
                continue
            backend, _, server = key.partition("/")
            runtime.set_server(dev.paths.runtime_socket, backend, server, value, previous)
