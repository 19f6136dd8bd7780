"""EnvoyDriver: one managed (or adopted) Envoy per Device, driven by files.

This module is the contract's surface: locking and fencing (``toolkit.fence.DeviceDir``), the
refusal of trees asking for features the driver lacks, and the mapping of each call to the
module that does the work (``converge``, ``verify``, ``status``). See the package docstring
for the device config and the mapping of the model to Envoy.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from lbaas.drivers import capabilities
from lbaas.drivers.contract import (
    DeviceHandle,
    Drift,
    Driver,
    LoadBalancerStats,
    ProbeResult,
    Statuses,
)
from lbaas.drivers.envoy import verify as verifier
from lbaas.drivers.envoy.admin import AdminError
from lbaas.drivers.envoy.config import parse_config
from lbaas.drivers.envoy.converge import converge
from lbaas.drivers.envoy.device import Device, Memo
from lbaas.drivers.envoy.process import Supervisor
from lbaas.drivers.envoy.render.bootstrap import render_bootstrap
from lbaas.drivers.envoy.render.listeners import INSECURE_FALLBACK
from lbaas.drivers.envoy.render.names import too_long
from lbaas.drivers.envoy.stats import lb_stats
from lbaas.drivers.envoy.stats import read as read_stats
from lbaas.drivers.envoy.status import lb_statuses
from lbaas.drivers.envoy.store import DriverState
from lbaas.drivers.envoy.view import read_view
from lbaas.drivers.errors import DriverError, Reason, StaleOwnerError, UnsupportedError
from lbaas.drivers.model import ClientValidationMode, LoadBalancer
from lbaas.drivers.toolkit.deathwatch import DeathWatch
from lbaas.drivers.toolkit.fence import DeviceDir
from lbaas.drivers.toolkit.files import atomic_write, read_text

FEATURES = frozenset({
    "protocol.tcp", "protocol.http", "protocol.https", "protocol.udp",
    "tls.terminate", "tls.sni", "tls.min-version", "tls.hitless-rotation",
    "tls.cipher-suites", "tls.alpn", "tls.client-validation", "tls.backend",
    "method.round-robin", "method.least-connections", "method.source-ip",
    "member.weight", "member.backup", "member.admin-state", "member.monitor-address",
    "pool.admin-state", "listener.connection-limit", "listener.admin-state", "listener.multiple",
    "monitor.tcp", "monitor.http", "monitor.https", "monitor.ping",
    "persistence.source-ip", "persistence.http-cookie",
    "http.forwarded-headers",
    "l7.host", "l7.path", "l7.header", "l7.method", "l7.query", "l7.regex", "l7.redirect",
    "l7.reject", "l7.header-modifier", "l7.weighted-split", "l7.multiple-pools",
    "ops.batch", "ops.hitless-members", "ops.drain", "ops.member-status", "ops.verify",
    "ops.orphans", "ops.watch", "ops.fencing", "ops.traffic-stats",
})  # fmt: skip
"""Each tested with traffic (tests/dataplane/test_envoy_*.py); test_envoy_declared.py proves
the ones declared last. Client validation: AllowValidOnly only (``supports``). Not
``persistence.app-cookie``: Envoy hashes the application's cookie (each session stays on one
member) but cannot learn which member issued it, as the conformance kit requires."""


ALLOW_VALID_ONLY = ClientValidationMode.ALLOW_VALID_ONLY


class EnvoyDriver(Driver):
    """See the package docstring for the device config and the mapping to Envoy."""

    features: ClassVar[frozenset[str]] = FEATURES

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._memos: dict[str, Memo] = {}
        self._dirs = DeviceDir()
        self._watches: list[DeathWatch] = []

    # -- contract -------------------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> None:
        parse_config(config)

    def supports(self, lb: LoadBalancer, config: Mapping[str, Any]) -> str | None:
        """Names too long for the files they name, client validation AllowInsecureFallback
        (the scheduler then picks another device)."""
        try:
            for listener in lb.listeners:
                validation = listener.tls.client_validation if listener.tls else None
                if validation is not None and validation.mode != ALLOW_VALID_ONLY:
                    return f"listener {listener.name}: {INSECURE_FALLBACK}"
            return too_long(lb)
        except Exception as exc:  # never raises: a tree it cannot read is one it cannot serve
            return f"the envoy driver cannot read this load balancer: {exc}"

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        """A batch of one (``apply_many``): the same path, the same outcome."""
        error = self.apply_many(device, [lb])[lb.key]
        if error is not None:
            raise error

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        """All of ``lbs`` in one round of files (one CDS, one LDS); each tree's own outcome."""
        if not lbs:
            return {}
        outcome: dict[str, DriverError | None] = {}
        changes: dict[str, LoadBalancer | None] = {}
        for lb in lbs:
            if lacking := capabilities.missing(lb, self.features):
                outcome[lb.key] = UnsupportedError(
                    f"the envoy driver cannot serve {', '.join(lacking)}", feature=lacking[0]
                )
            else:
                changes[lb.key] = lb
        if changes:
            with self._device(device) as dev:
                outcome |= converge(dev, changes)
        return outcome

    def delete(self, device: DeviceHandle, key: str) -> None:
        with self._device(device) as dev:
            error = converge(dev, {key: None})[key]
        if error is not None:
            raise error

    def probe(self, device: DeviceHandle) -> ProbeResult:
        """Ready when Envoy is LIVE; a managed Envoy that is down is started from the files,
        and files older than the stored trees (an apply cut short) are written again."""
        try:
            with self._device(device) as dev:
                converge(dev, {})
                pid = dev.supervisor.pid()
                sock = dev.admin()
                if pid is None or sock is None:
                    return ProbeResult(False, "Envoy is not running")
                listeners = len(read_view(sock, hosts_only=False).listeners)
        except StaleOwnerError:
            raise
        except AdminError as exc:
            return ProbeResult(False, f"Envoy's admin API does not answer: {exc}")
        except DriverError as exc:
            if not exc.retryable:
                raise
            return ProbeResult(False, exc.user_message)
        return ProbeResult(True, f"Envoy pid {pid}, {listeners} listeners")

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        """One ``/clusters`` for the whole device."""
        with self._device(device) as dev:
            sock = dev.admin()
            if sock is None:
                raise DriverError("cannot read member status: Envoy is not running")
            try:
                view = read_view(sock, hosts_only=True)
            except AdminError as exc:
                raise DriverError("cannot read member status", detail=str(exc)) from exc
            parked = DriverState.load(dev.paths.state).parked
        return {lb.key: lb_statuses(lb, view) for lb in lbs if lb.key not in parked}

    def traffic_stats(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, LoadBalancerStats]:
        """One ``/stats`` and one ``/clusters`` read for the whole device (``stats``)."""
        with self._device(device) as dev:
            sock = dev.admin()
            if sock is None:
                raise DriverError("cannot read traffic statistics: Envoy is not running")
            try:
                values, clusters = read_stats(sock)
            except AdminError as exc:
                raise DriverError("cannot read traffic statistics", detail=str(exc)) from exc
        return lb_stats(lbs, values, clusters)

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        with self._device(device) as dev:
            return verifier.verify(dev, lb)

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        with self._device(device) as dev:
            return verifier.orphans(dev, expected)

    def watch(self, device: DeviceHandle, changed: Callable[[], None]) -> Callable[[], None]:
        """A thread that calls ``changed`` the instant the device's Envoy exits."""
        memo = self._memo(device)
        watcher = DeathWatch(memo.supervisor.pid, changed, device.name)
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
        """Counters (``starts``, ``pushes``) and the trees left out, with why."""
        return DriverState.load(parse_config(device.config).paths().state)

    def pid(self, device: DeviceHandle) -> int | None:
        return self._memo(device).supervisor.pid()

    # -- internals ------------------------------------------------------------------------

    def _memo(self, device: DeviceHandle) -> Memo:
        config = parse_config(device.config)
        with self._guard:
            memo = self._memos.get(config.state_dir)
            if memo is None or memo.supervisor.config != config:
                memo = self._memos[config.state_dir] = Memo(Supervisor(config))
            return memo

    @contextlib.contextmanager
    def _device(self, device: DeviceHandle) -> Iterator[Device]:
        """One device's state dir, locked and fenced (``DeviceDir``), its dirs and bootstrap
        in place."""
        memo = self._memo(device)
        config = memo.supervisor.config
        paths = config.paths()
        try:
            for path, mode in paths.dirs():
                path.mkdir(parents=True, exist_ok=True, mode=mode)
        except OSError as exc:
            raise DriverError(
                f"cannot create stateDir {paths.root}: {exc.strerror}",
                retryable=False,
                reason=Reason.INVALID_CONFIG,
            ) from exc
        with self._dirs.session(paths.root, device):
            bootstrap = render_bootstrap(paths, device.name)
            if read_text(paths.bootstrap) != bootstrap:
                atomic_write(paths.bootstrap, bootstrap, 0o644)
            memo.drift = None
            yield Device(device.name, config, paths, memo)
