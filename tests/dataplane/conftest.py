"""Fixtures for driver-level data-plane tests: real backends on 127.0.20.x, a real HAProxy
started by the driver in a private state dir, real traffic through VIPs on 127.0.10.x.

Every HAProxy a test starts is stopped at teardown through the pid file of its state dir.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane.hxsupport import Backends, Device, haproxy_binary, stop_haproxy

from lbaas.api.device import DeviceSpec
from lbaas.drivers.base import DeviceHandle
from lbaas.drivers.haproxy import HAProxyDriver


@pytest.fixture
def backends() -> Iterator[Backends]:
    made = Backends()
    yield made
    for server in made.started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def make_device() -> Iterator[Callable[..., Device]]:
    binary = haproxy_binary()
    dirs: list[Path] = []

    def make(**config: Any) -> Device:
        # Short: UNIX socket paths must stay under ~100 bytes.
        state_dir = Path(tempfile.mkdtemp(prefix="lbhx-", dir="/tmp"))
        dirs.append(state_dir)
        spec = DeviceSpec(
            driver="haproxy",
            config={"stateDir": str(state_dir), "haproxyBinary": binary, **config},
        )
        return Device(DeviceHandle(f"dev-{state_dir.name}", spec), state_dir, HAProxyDriver())

    yield make
    for state_dir in dirs:
        stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def device(make_device: Callable[..., Device]) -> Device:
    return make_device()
