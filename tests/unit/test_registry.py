"""Finding drivers through the lbaas.drivers entry-point group.

The ``fake`` driver is installed from tests/plugins/fakedriver as a distribution of its own,
exactly as a vendor's driver would be: nothing here registers it by hand.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

import pytest

from lbaas.drivers.contract import Driver
from lbaas.drivers.errors import DriverError
from lbaas.drivers.registry import GROUP, DriverRegistry, UnknownDriverError
from lbaas_fake_driver import FakeDriver


def test_fake_driver_is_installed_as_an_entry_point() -> None:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == "fake"]
    assert len(found) == 1
    assert found[0].value == "lbaas_fake_driver:FakeDriver"
    assert found[0].dist is not None and found[0].dist.name == "lbaas-fake-driver"
    assert "fake" in DriverRegistry().available()


def test_get_finds_the_fake_driver() -> None:
    driver = DriverRegistry().get("fake")
    assert isinstance(driver, Driver)
    assert isinstance(driver, FakeDriver)


def test_same_instance_every_time() -> None:
    registry = DriverRegistry()
    assert registry.get("fake") is registry.get("fake")
    # Another registry loads its own.
    assert DriverRegistry().get("fake") is not registry.get("fake")


def test_same_instance_from_many_threads() -> None:
    registry = DriverRegistry()
    start = threading.Barrier(8)
    got: list[Driver] = []
    lock = threading.Lock()

    def load() -> None:
        start.wait(timeout=5)
        driver = registry.get("fake")
        with lock:
            got.append(driver)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert len(got) == 8
    assert all(d is got[0] for d in got)


def test_close_forgets_the_instances() -> None:
    registry = DriverRegistry()
    first = registry.get("fake")
    registry.close()
    assert registry.get("fake") is not first


def test_unknown_driver() -> None:
    registry = DriverRegistry()
    with pytest.raises(UnknownDriverError) as info:
        registry.get("no-such-vendor")
    err = info.value
    assert isinstance(err, DriverError)
    assert err.reason == "UnknownDriver"
    assert err.retryable is False
    installed = sorted({ep.name for ep in entry_points(group=GROUP)})
    assert "fake" in installed
    assert f"(installed: {', '.join(installed)})" in err.user_message
    assert "'no-such-vendor'" in err.user_message
    assert "fix spec.driver" in err.user_message
    # A failed lookup caches nothing: the real driver is still found afterwards.
    assert isinstance(registry.get("fake"), FakeDriver)


def test_unknown_driver_message_when_none_is_installed() -> None:
    assert "(installed: none)" in UnknownDriverError("x", []).user_message
