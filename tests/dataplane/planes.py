"""The data planes the operator-level tests run on, one small adapter each.

A test that takes the ``plane`` fixture (``conftest``: parametrised over ``haproxy`` and
``envoy``) runs once per data plane on Devices of that driver (``make_op_device``). The
scenario is the same; what differs between the planes is asked of the adapter, never tested
by the driver's name:

- ``config``: the Device's ``spec.config`` (managed, a private ``stateDir``, the binary);
- ``pid``: the data plane's process (HAProxy's master, Envoy), ``starts``: how often the
  driver started it;
- ``disruptions``: changes that replaced the device's configuration as a whole (HAProxy:
  reloads; Envoy: calls that wrote its LDS or CDS files, ``rounds``). Member changes cause
  none on either plane;
- ``member_updates``: member changes made at run time, when the driver counts them (HAProxy's
  runtime API; Envoy's EDS files are not counted: None);
- ``tree_file``: where the driver keeps a VIP's tree (a member gone from it left the device);
- ``redirect``: the device's files edited behind the operator's back, so that one member's
  traffic goes to another backend, and loaded (a drift ``verify`` must find as
  ``ConfigChanged``);
- ``stop``: kill what the driver started (test teardown).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from lbaas.drivers.envoy.store import DriverState as EnvoyState
from lbaas.drivers.haproxy import runtime
from lbaas.drivers.haproxy.store import DriverState as HAProxyState
from lbaas.drivers.toolkit.files import atomic_write
from lbaas.drivers.toolkit.process import read_pid

HERE = Path(__file__).resolve().parent


def support(name: str) -> ModuleType:
    """``hxsupport`` or ``envoysupport``: the ``dataplane`` package's module under pytest;
    loaded by path when bench/ loads this file (there ``dataplane`` is bench/dataplane.py)."""
    if __package__ == "dataplane":
        return importlib.import_module(f"dataplane.{name}")
    key = f"lbaas_planes_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


class Plane(Protocol):
    driver: str

    def config(self, state_dir: Path) -> dict[str, Any]: ...
    def pid(self, state_dir: Path) -> int | None: ...
    def starts(self, state_dir: Path) -> int: ...
    def disruptions(self, state_dir: Path) -> int: ...
    def member_updates(self, state_dir: Path) -> int | None: ...
    def tree_file(self, state_dir: Path, namespace: str, name: str) -> Path: ...
    def redirect(self, state_dir: Path, namespace: str, vip: str, pool: str,
                 source: tuple[str, int], target: tuple[str, int]) -> None: ...  # fmt: skip
    def stop(self, state_dir: Path) -> None: ...


@dataclass(frozen=True)
class HAProxyPlane:
    driver: str = "haproxy"

    def config(self, state_dir: Path) -> dict[str, Any]:
        binary = support("hxsupport").haproxy_binary()
        return {"managed": True, "stateDir": str(state_dir), "haproxyBinary": binary}

    def pid(self, state_dir: Path) -> int | None:
        return read_pid(state_dir / "haproxy.pid")

    def starts(self, state_dir: Path) -> int:
        return HAProxyState.load(state_dir / "driver-state.json").starts

    def disruptions(self, state_dir: Path) -> int:
        return HAProxyState.load(state_dir / "driver-state.json").reloads

    def member_updates(self, state_dir: Path) -> int | None:
        return HAProxyState.load(state_dir / "driver-state.json").runtime_updates

    def tree_file(self, state_dir: Path, namespace: str, name: str) -> Path:
        return state_dir / "vips" / f"{namespace}__{name}.json"

    def redirect(self, state_dir: Path, namespace: str, vip: str, pool: str,
                 source: tuple[str, int], target: tuple[str, int]) -> None:  # fmt: skip
        """The VIP's ``conf.d/`` fragment edited, and HAProxy reloaded by hand."""
        fragment = state_dir / "conf.d" / f"{namespace}__{vip}.cfg"
        text = fragment.read_text()
        assert "{}:{}".format(*source) in text
        fragment.write_text(text.replace("{}:{}".format(*source), "{}:{}".format(*target)))
        runtime.command(state_dir / "master.sock", "reload")

    def stop(self, state_dir: Path) -> None:
        support("hxsupport").stop_haproxy(state_dir)


@dataclass(frozen=True)
class EnvoyPlane:
    driver: str = "envoy"

    def config(self, state_dir: Path) -> dict[str, Any]:
        # One worker and a short drain: two cores shared by a whole test run.
        binary = support("envoysupport").envoy_binary()
        return {"managed": True, "stateDir": str(state_dir), "envoyBinary": binary,
                "concurrency": 1, "drainTimeSeconds": 5}  # fmt: skip

    def pid(self, state_dir: Path) -> int | None:
        return read_pid(state_dir / "envoy.pid")

    def starts(self, state_dir: Path) -> int:
        return EnvoyState.load(state_dir / "driver-state.json").starts

    def disruptions(self, state_dir: Path) -> int:
        return EnvoyState.load(state_dir / "driver-state.json").rounds

    def member_updates(self, state_dir: Path) -> int | None:
        return None

    def tree_file(self, state_dir: Path, namespace: str, name: str) -> Path:
        return state_dir / "trees" / f"{namespace}__{name}.json"

    def redirect(self, state_dir: Path, namespace: str, vip: str, pool: str,
                 source: tuple[str, int], target: tuple[str, int]) -> None:  # fmt: skip
        """The pool's EDS file edited and renamed into place (Envoy loads it at once)."""
        path = state_dir / "xds" / "eds" / f"{namespace}__{vip}__{pool}.json"
        data = json.loads(path.read_text())
        found = 0
        for group in data["resources"][0]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                socket = endpoint["endpoint"]["address"]["socket_address"]
                if (socket["address"], socket["port_value"]) == source:
                    socket["address"], socket["port_value"] = target
                    found += 1
        assert found == 1, f"{source} is not one endpoint of {path.name}"
        data["version_info"] += "-by-hand"
        atomic_write(path, json.dumps(data) + "\n", 0o644)

    def stop(self, state_dir: Path) -> None:
        support("envoysupport").stop_envoy(state_dir)


PLANES: dict[str, Plane] = {"haproxy": HAProxyPlane(), "envoy": EnvoyPlane()}
