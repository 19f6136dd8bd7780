"""Fixtures for the data-plane tests: real backends on <net>.20.x, a real HAProxy started by
the driver in a private state dir, real traffic through VIPs on <net>.10.x (``<net>`` is
``LBAAS_TEST_NET``, default 127.0; see hxsupport).

Driver-level tests call the driver directly (``make_device``, ``device``); operator-level tests
run the real operator process against the test bed (``operator``) and create Devices of driver
haproxy through the API (``make_hx_device``).

Every HAProxy a test starts is stopped at teardown through the pid file of its state dir.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane.envoysupport import EnvoyDevice, envoy_binary, stop_envoy
from dataplane.hxsupport import (
    Backends,
    Device,
    OperatorDevice,
    free_vip,
    haproxy_binary,
    names_in,
    stop_haproxy,
)

from helpers import Api, OperatorProcess, wait_for
from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.envoy import EnvoyDriver
from lbaas.drivers.haproxy import HAProxyDriver


@pytest.fixture
def squatter() -> Iterator[tuple[str, int]]:
    """An address:port held by a process that is not the device's HAProxy."""
    with socket.socket() as sock:
        sock.bind(free_vip())
        sock.listen()
        yield sock.getsockname()


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
        config = {"stateDir": str(state_dir), "haproxyBinary": binary, **config}
        handle = DeviceHandle(f"dev-{state_dir.name}", driver="haproxy", config=config)
        return Device(handle, state_dir, HAProxyDriver())

    yield make
    for state_dir in dirs:
        stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def device(make_device: Callable[..., Device]) -> Device:
    return make_device()


# -- through the operator --------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """One operator per test module (never two at once: they would fight over objects).

    A module that needs other settings names them in ``OPERATOR_ENV`` (LBAAS_* variables).
    """
    haproxy_binary()  # skip (or fail under LBAAS_STRICT=1) before starting anything
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {"LBAAS_MEMBER_STATUS_INTERVAL": "1", **getattr(request.module, "OPERATOR_ENV", {})}
    proc = OperatorProcess(log, **env).start()
    yield proc
    proc.stop()
    print(f"operator log: {log}")


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> Api:
    return Api()


TREE_KINDS = ("L7Policy", "HealthMonitor", "Member", "Pool", "VIP")


@pytest.fixture
def make_hx_device(
    operator: OperatorProcess, api: Api, namespace: str
) -> Iterator[Callable[..., OperatorDevice]]:
    """Devices of driver haproxy (managed, private stateDir) that only this test's namespace
    may use, created through the API and Ready. At teardown the namespace's VIP trees and the
    devices are deleted through the API, then any HAProxy left is killed via its pid file."""
    binary = haproxy_binary()
    made: list[OperatorDevice] = []

    def make(
        address_pool: str, config: dict[str, Any] | None = None, **spec: Any
    ) -> OperatorDevice:
        state_dir = Path(tempfile.mkdtemp(prefix="lbop-", dir="/tmp"))
        name = f"hx-{namespace}-{uuid.uuid4().hex[:4]}"
        device = OperatorDevice(api, name, state_dir, address_pool)
        made.append(device)
        config = {
            "managed": True,
            "stateDir": str(state_dir),
            "haproxyBinary": binary,
            **(config or {}),
        }
        api.create(
            {
                "kind": "Device",
                "metadata": {"name": name},
                "spec": {
                    "driver": "haproxy",
                    "config": config,
                    "addressPool": [address_pool],
                    "allowedNamespaces": [namespace],
                    # The backends run on this host's loopback: allowed explicitly, as a
                    # device's member networks must (loopback is refused by default).
                    "memberNetworks": ["127.0.0.0/8"],
                    **spec,
                },
            }
        )
        api.wait_phase("Device", name, None, "Ready", 30)
        return device

    yield make
    try:
        for kind in TREE_KINDS:
            for name in names_in(api, kind, namespace):
                api.delete(kind, name, namespace)
        for name in names_in(api, "VIP", namespace):
            with contextlib.suppress(AssertionError):
                api.wait_gone("VIP", name, namespace, 30)
        for device in made:
            api.delete("Device", device.name)
        for device in made:
            with contextlib.suppress(AssertionError):
                wait_for(lambda d=device: api.get("Device", d.name) is None, 30, "device gone")
    finally:
        for device in made:
            stop_haproxy(device.state_dir)
            shutil.rmtree(device.state_dir, ignore_errors=True)


# -- the Envoy driver --------------------------------------------------------------------------


@pytest.fixture
def make_envoy() -> Iterator[Callable[..., EnvoyDevice]]:
    """Devices of driver envoy (managed, private short stateDir, one worker); every Envoy a test
    starts is stopped at teardown through its pid file."""
    binary = envoy_binary()
    dirs: list[Path] = []

    def make(driver: EnvoyDriver | None = None, **config: Any) -> EnvoyDevice:
        state_dir = Path(tempfile.mkdtemp(prefix="lbev-", dir="/tmp"))
        dirs.append(state_dir)
        handle = DeviceHandle(
            f"dev-{state_dir.name}",
            "envoy",
            {"stateDir": str(state_dir), "envoyBinary": binary, "concurrency": 1,
             "drainTimeSeconds": 5, **config},
        )  # fmt: skip
        return EnvoyDevice(handle, state_dir, driver or EnvoyDriver())

    yield make
    for state_dir in dirs:
        stop_envoy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def envoy(make_envoy: Callable[..., EnvoyDevice]) -> EnvoyDevice:
    return make_envoy()
