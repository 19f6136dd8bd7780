"""One call's view of a device (:class:`Device`) and what the driver remembers about it between
calls (:class:`Memo`).

Every module that works on a device (``converge``, ``plan``, ``reload``, ``runtime_path``,
``verify``) takes a :class:`Device`; keeping it here, below all of them, keeps the module graph
free of cycles (``converge`` uses the others, none of them uses ``converge``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lbaas.drivers.contract import Drift
from lbaas.drivers.errors import DriverError
from lbaas.drivers.haproxy.config import DevicePaths, HAProxyDeviceConfig
from lbaas.drivers.haproxy.process import Supervisor
from lbaas.drivers.haproxy.render import Fragment, GlobalSettings, render_vip
from lbaas.drivers.haproxy.runtime import ProcInfo
from lbaas.drivers.haproxy.store import DriverState, TreeCache, file_stem
from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.pace import Pace


@dataclass
class Memo:
    """What one driver instance remembers about one device between calls (never needed for
    correctness: a new instance starts empty). The locks are the driver's ``DeviceDir``."""

    trees: TreeCache = field(default_factory=TreeCache)
    rendered: dict[int, tuple[LoadBalancer, Fragment]] = field(default_factory=dict)
    device_drift: tuple[float, list[Drift]] | None = None
    pace: Pace = field(default_factory=Pace)

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

    def wrote(self, path: Path, lb: LoadBalancer, fragment: Fragment) -> None:
        """``lb`` (rendered as ``fragment``) is now the VIP file ``path``."""
        self.trees.remember(path, lb)
        self.rendered[id(lb)] = (lb, fragment)


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
            state_dir=str(self.paths.root),
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
