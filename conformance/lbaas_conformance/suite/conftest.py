"""Fixtures of the suite: the device under test (``kit``) and members to send traffic to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lbaas_conformance.backends import Backends
from lbaas_conformance.client import until
from lbaas_conformance.kit import Kit
from lbaas_conformance.plugin import KIT


@pytest.fixture(scope="session")
def device_kit(request: pytest.FixtureRequest) -> Kit:
    """The run's kit, once the device answers its probe as ready (after the last test, the
    plugin deletes every load balancer the run applied)."""
    if KIT not in request.config.stash:
        pytest.skip("the conformance suite runs through lbaas-conformance (or --lbaas-driver)")
    kit = request.config.stash[KIT].kit
    until(lambda: kit.probe().ready, kit.device.timing.settle, "the device ready (probe)")
    return kit


@pytest.fixture
def kit(device_kit: Kit) -> Kit:
    """The kit, its load balancers numbered from the first again (see ``Kit.slot``)."""
    device_kit.begin()
    return device_kit


@pytest.fixture
def backends(device_kit: Kit) -> Iterator[Backends]:
    """Members of this test, on the device config's backend addresses; stopped after it."""
    started = Backends(device_kit.device.backends, device_kit.device.backend_ports)
    yield started
    started.close()
