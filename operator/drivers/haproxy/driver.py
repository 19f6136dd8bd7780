"""HAProxyDriver: the reference driver, one HAProxy master per Device (driver contract 1).

This module is the contract's surface: locking, fencing and the mapping of each call to the
modules that do the work (``converge`` for apply/apply_many/delete/probe, ``verify`` for
verify/orphans, ``toolkit.deathwatch`` for watch). See the package docstring for the device
config and the mapping of the driver data model to HAProxy.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

from lbaas.drivers.contract import (
    DeviceHandle,
    Drift,
    Driver,
    LoadBalancerStats,
    ProbeResult,
    Statuses,
)
from lbaas.drivers.errors import DriverError, StaleOwnerError
from lbaas.drivers.haproxy import runtime, stats, verify
from lbaas.drivers.haproxy.config import parse_config
from lbaas.drivers.haproxy.converge import converge
from lbaas.drivers.haproxy.device import Device, Memo, in_sync
from lbaas.drivers.haproxy.features import FEATURES
from lbaas.drivers.haproxy.names import backend_name
from lbaas.drivers.haproxy.process import PROBE_TIMEOUT, Supervisor
from lbaas.drivers.haproxy.render import unsupported_reason
from lbaas.drivers.haproxy.runtime import CLIError, ServerState
from lbaas.drivers.haproxy.store import DriverState
from lbaas.drivers.model import LoadBalancer, MemberStatus
from lbaas.drivers.toolkit.deathwatch import DeathWatch
from lbaas.drivers.toolkit.fence import DeviceDir
from lbaas.drivers.toolkit.process import pid_alive, read_pid


def operating_status(server: ServerState) -> MemberStatus:
    """A running server (``show servers state``) as a member status."""
    if server.in_maintenance:
        return MemberStatus.OFFLINE
    if server.op_state == runtime.OP_STOPPED:
        return MemberStatus.ERROR
    if server.draining or server.weight == 0 or server.op_state == runtime.OP_STOPPING:
        return MemberStatus.DRAINING
    if server.checked:
        return MemberStatus.ONLINE
    return MemberStatus.NO_MONITOR


def lb_statuses(
    lb: LoadBalancer, running: Mapping[str, Mapping[str, ServerState]]
) -> dict[str, MemberStatus] | None:
    """``lb``'s members from its backends' running servers, by member name (None: the device
    does not serve ``lb``, e.g. a VIP left out of the configuration)."""
    found: dict[str, MemberStatus] = {}
    for pool in lb.pools:
        if not pool.admin_state_up:
            found |= dict.fromkeys((m.name for m in pool.members), MemberStatus.OFFLINE)
            continue
        if not pool.members:
            continue
        servers = running.get(backend_name(lb, pool))
        if servers is None:
            return None
        found |= {m.name: operating_status(servers[m.name]) for m in pool.members
                  if m.name in servers}  # fmt: skip
    return found


class HAProxyDriver(Driver):
    """See the package docstring for the device config and the mapping to HAProxy."""

    features = FEATURES

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._memos: dict[str, Memo] = {}
        self._dirs = DeviceDir()
        self._watches: list[DeathWatch] = []

    # -- contract -------------------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> None:
        parse_config(config)

    def supports(self, lb: LoadBalancer, config: Mapping[str, Any]) -> str | None:
        """A key too long for the driver's file names, cookies it cannot see (not HTTP) or
        parse; the features are the core's check (``apply`` refuses them too)."""
        try:
            return unsupported_reason(lb)
        except Exception as exc:  # never raises: a tree it cannot read is one it cannot serve
            return f"the haproxy driver cannot read this load balancer: {exc}"

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """A batch of one (``apply_many``): the same path, the same outcome."""
        error = self.apply_many(device, [lb])[lb.key]
        if error is not None:
            raise error

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        """All of ``lbs`` for the price of one apply: one lock, one plan, one ``haproxy -c``,
        at most one reload (none when runtime commands suffice); each VIP's own outcome."""
        if not lbs:
            return {}  # an empty batch would read as "finish pending work" (probe)
        with self._device(device) as dev:
            return converge(dev, {lb.key: lb for lb in lbs})

    def delete(self, device: DeviceHandle, key: str) -> None:
        with self._device(device) as dev:
            error = converge(dev, {key: None})[key]
        if error is not None:
            raise error

    def probe(self, device: DeviceHandle) -> ProbeResult:
        """Ready when a worker answers; starts a managed HAProxy that is down and finishes a
        pending reload. Takes a few seconds at most when HAProxy hangs (bounded timeouts)."""
        try:
            with self._device(device) as dev:
                master = dev.supervisor.master()
                if master is None and not dev.config.managed:
                    return ProbeResult(
                        False,
                        f"HAProxy master socket {dev.paths.master_socket} does not answer"
                        " (unmanaged device: HAProxy must be started outside the operator)",
                    )
                state = DriverState.load(dev.paths.state)
                if master is None or state.pending_reload or dev.supervisor.needs_restart(master):
                    converge(dev, {})
                    master = dev.supervisor.master()
                if master is None or not master.workers:
                    return ProbeResult(False, "HAProxy runs no worker")
                runtime.command(dev.paths.runtime_socket, "show info", PROBE_TIMEOUT)
        except CLIError as exc:
            return ProbeResult(False, f"HAProxy's worker does not answer: {exc}")
        except StaleOwnerError:
            raise  # not the device's state: this agent must not touch it
        except DriverError as exc:
            if not exc.retryable:
                raise
            return ProbeResult(False, exc.user_message)
        workers = ", ".join(str(pid) for pid in master.current_workers) or "none"
        return ProbeResult(True, f"HAProxy master pid {master.master_pid}, workers {workers}")

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        """One ``show servers state`` for the whole device."""
        with self._device(device) as dev:
            try:
                running = runtime.all_servers_state(dev.paths.runtime_socket, runtime.QUERY_TIMEOUT)
            except CLIError as exc:
                raise DriverError(
                    "cannot read member status: HAProxy's runtime API does not answer",
                    detail=str(exc),
                ) from exc
        found = {lb.key: lb_statuses(lb, running) for lb in lbs}
        return {key: statuses for key, statuses in found.items() if statuses is not None}

    def traffic_stats(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, LoadBalancerStats]:
        """One ``show stat`` for the whole device (``stats``)."""
        with self._device(device) as dev:
            try:
                text = runtime.command(dev.paths.runtime_socket, "show stat", runtime.QUERY_TIMEOUT)
            except CLIError as exc:
                raise DriverError(
                    "cannot read traffic counters: HAProxy's runtime API does not answer",
                    detail=str(exc),
                ) from exc
            state = DriverState.load(dev.paths.state)
        return stats.device_stats(lbs, text, state.reloads + state.starts)

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        with self._device(device) as dev:
            return verify.verify(dev, lb)

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        with self._device(device) as dev:
            return verify.orphans(dev, expected)

    def watch(self, device: DeviceHandle, changed: Callable[[], None]) -> Callable[[], None]:
        """A thread that calls ``changed`` the instant the device's HAProxy master exits."""
        config = parse_config(device.config)
        supervisor = Supervisor(config)

        def find_master() -> int | None:
            pid = read_pid(supervisor.paths.pid)
            if pid is not None and pid_alive(pid):
                return pid
            if config.managed:
                return None
            with contextlib.suppress(CLIError, DriverError):
                return runtime.show_proc(supervisor.paths.master_socket, PROBE_TIMEOUT).master_pid
            return None

        watcher = DeathWatch(find_master, changed, f"haproxy-{device.name}")
        watcher.start()
        with self._guard:
            self._watches.append(watcher)

        def stop() -> None:
            watcher.stop()
            with self._guard, contextlib.suppress(ValueError):
                self._watches.remove(watcher)

        return stop

    def close(self) -> None:
        with self._guard:
            watches, self._watches = self._watches, []
        for watcher in watches:
            watcher.stop()

    # -- introspection (tests, tooling) ---------------------------------------------------

    def state(self, device: DeviceHandle) -> DriverState:
        """Counters (``reloads``, ``starts``, ``runtime_updates``), pending reload, parked."""
        return DriverState.load(parse_config(device.config).paths().state)

    def reload_count(self, device: DeviceHandle) -> int:
        return self.state(device).reloads

    def in_sync(self, device: DeviceHandle) -> bool:
        """The running HAProxy loaded what the driver last wrote (tests)."""
        with self._device(device) as dev:
            state = DriverState.load(dev.paths.state)
            return in_sync(dev, state, dev.supervisor.master())

    # -- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _device(self, device: DeviceHandle) -> Iterator[Device]:
        """Serialise work on one device (``DeviceDir``: a thread lock, and a file lock against
        another operator process using the same state dir, an old one still shutting down);
        under both, refuse a caller whose fence is older than one the device has seen."""
        config = parse_config(device.config)
        paths = config.paths()
        with self._guard:
            memo = self._memos.setdefault(config.state_dir, Memo())
        try:
            paths.vips.mkdir(parents=True, exist_ok=True, mode=0o700)
            paths.conf_d.mkdir(exist_ok=True, mode=0o755)
            paths.maps.mkdir(exist_ok=True, mode=0o755)
        except OSError as exc:
            raise DriverError(
                f"cannot create stateDir {paths.root}: {exc.strerror}",
                retryable=False,
                reason="InvalidConfig",
            ) from exc
        with self._dirs.session(paths.root, device):
            yield Device(config, paths, Supervisor(config), memo)
