"""One call's view of a device, and what a driver instance remembers about it between calls
(never needed for correctness: a new instance starts empty and reads the state dir)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lbaas.drivers.envoy.config import DevicePaths, EnvoyDeviceConfig
from lbaas.drivers.envoy.process import Supervisor
from lbaas.drivers.envoy.render.tree import Rendered, render_tree
from lbaas.drivers.envoy.store import TreeCache, tree_file
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.pace import Pace


@dataclass
class Memo:
    supervisor: Supervisor
    trees: TreeCache = field(default_factory=TreeCache)
    rendered: dict[int, tuple[LoadBalancer, Rendered]] = field(default_factory=dict)
    pace: Pace = field(default_factory=lambda: Pace(fixed=0.2, per_vip=0.005))
    drift: tuple[float, object] | None = None
    """Device-wide findings of ``verify``, cached briefly (see ``verify``)."""


@dataclass
class Device:
    name: str
    config: EnvoyDeviceConfig
    paths: DevicePaths
    memo: Memo

    @property
    def supervisor(self) -> Supervisor:
        return self.memo.supervisor

    def render(self, lb: LoadBalancer) -> Rendered:
        """``render_tree`` of ``lb``, cached while that object lives (stored trees come from
        the TreeCache as the same objects until their file changes)."""
        cached = self.memo.rendered.get(id(lb))
        if cached is not None and cached[0] is lb:
            return cached[1]
        rendered = render_tree(lb, eds_dir=self.paths.eds, sds_dir=self.paths.sds,
                               inline=self.config.endpoints == "inline")  # fmt: skip
        if len(self.memo.rendered) > 4096:
            self.memo.rendered.clear()
        self.memo.rendered[id(lb)] = (lb, rendered)
        return rendered

    def tree_path(self, key: str) -> Path:
        return tree_file(self.paths.trees, key)

    def admin(self) -> Path | None:
        """The admin socket while Envoy runs, else None."""
        return self.paths.admin_socket if self.supervisor.pid() is not None else None
