"""Fixtures for integration tests: the real operator process against the real API server."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import GROUP, VERSION, Api, FakeDevice, OperatorProcess


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """One operator per test module (never two at once: they would fight over objects).

    A module that needs other settings names them in ``OPERATOR_ENV`` (LBAAS_* variables).
    """
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(log, **getattr(request.module, "OPERATOR_ENV", {})).start()
    yield proc
    proc.stop()
    print(f"operator log: {log}")


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Api:
    return Api()


@pytest.fixture
def make_device(
    api: Api, namespace: str, tmp_path: Path, operator: OperatorProcess
) -> Iterator[Callable[..., FakeDevice]]:
    """Fake devices that only this test's namespace may use (tests never share devices).

    At teardown, while the module's operator still runs, the namespace's VIPs and then the
    devices are deleted: Devices left behind would count in later agents' fair shares.
    """
    made: list[FakeDevice] = []

    def make(name: str | None = None, *, create: bool = True, **spec: Any) -> FakeDevice:
        spec.setdefault("allowedNamespaces", [namespace])
        spec.setdefault("addressPool", ["10.200.0.0/24"])
        device = FakeDevice(api, name or f"{namespace}-{uuid.uuid4().hex[:4]}", tmp_path, **spec)
        made.append(device)
        return device.create() if create else device

    yield make
    remove_all(api, namespace, made)


def remove_all(api: Api, namespace: str, devices: list[FakeDevice]) -> None:
    """Delete the namespace's VIPs, then ``devices``; best effort (a test may have broken
    a device on purpose), never hiding the test's own outcome."""
    for vip in api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "vips")["items"]:
        api.delete("VIP", vip["metadata"]["name"], namespace)
    for device in devices:
        device.control()  # heal it, so deletions can go through
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "vips")["items"]:
            break
        time.sleep(0.2)
    for device in devices:
        api.delete("Device", device.name)
    for device in devices:
        with contextlib.suppress(AssertionError):
            api.wait_gone(
                "Device", device.name, None, timeout=max(1.0, deadline - time.monotonic())
            )
