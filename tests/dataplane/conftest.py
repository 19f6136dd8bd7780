"""Fixtures for the data-plane tests: real backends on <net>.20.x, a real HAProxy started by
the driver in a private state dir, real traffic through VIPs on <net>.10.x (``<net>`` is
``LBAAS_TEST_NET``, default 127.0; see hxsupport).

Driver-level tests call the driver directly (``make_device``, ``device``); operator-level tests
run the real operator process against the test bed (``operator``) and create Devices through
the API: of driver haproxy (``make_hx_device``), or of the data plane under test
(``make_op_device``, with ``plane`` parametrised over HAProxy and Envoy: ``planes``).

Every HAProxy or Envoy a test starts is stopped at teardown through the pid file of its state
dir.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
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
    stop_haproxy,
)
from dataplane.opsupport import operator_devices
from dataplane.planes import PLANES, Plane

from helpers import Api, OperatorProcess
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
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {"LBAAS_MEMBER_STATUS_INTERVAL": "1", **getattr(request.module, "OPERATOR_ENV", {})}
    proc = OperatorProcess(log, **env).start()
    yield proc
    proc.stop()
    print(f"operator log: {log}")


@pytest.fixture(scope="module")
def api(kubeconfig: str) -> Api:
    return Api()


@pytest.fixture
def make_hx_device(
    operator: OperatorProcess, api: Api, namespace: str
) -> Iterator[Callable[..., OperatorDevice]]:
    """Devices of driver haproxy (``operator_devices``): tests of HAProxy's own ways."""
    with operator_devices(api, namespace, PLANES["haproxy"]) as make:
        yield make


@pytest.fixture(params=[pytest.param("haproxy", marks=pytest.mark.haproxy),
                        pytest.param("envoy", marks=pytest.mark.envoy)])  # fmt: skip
def plane(request: pytest.FixtureRequest) -> Plane:
    """The data plane of an operator-level scenario that every driver must pass (the test
    runs once per plane; see ``planes``)."""
    return PLANES[request.param]


@pytest.fixture
def make_op_device(
    operator: OperatorProcess, api: Api, namespace: str, plane: Plane
) -> Iterator[Callable[..., OperatorDevice]]:
    """Devices of the ``plane`` under test (``operator_devices``)."""
    with operator_devices(api, namespace, plane) as make:
        yield make


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
