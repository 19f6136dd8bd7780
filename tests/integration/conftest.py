"""Fixtures for integration tests: the real operator process against the real API server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Api, FakeDevice, OperatorProcess


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
def make_device(api: Api, namespace: str, tmp_path: Path) -> Callable[..., FakeDevice]:
    """Fake devices that only this test's namespace may use (tests never share devices)."""

    def make(name: str | None = None, *, create: bool = True, **spec: Any) -> FakeDevice:
        spec.setdefault("allowedNamespaces", [namespace])
        spec.setdefault("addressPool", ["10.200.0.0/24"])
        device = FakeDevice(api, name or f"{namespace}-{uuid.uuid4().hex[:4]}", tmp_path, **spec)
        return device.create() if create else device

    return make
