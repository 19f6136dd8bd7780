"""Find drivers by name through Python entry points (group ``lbaas.drivers``).

A vendor ships its driver as its own distribution declaring
``[project.entry-points."lbaas.drivers"] myvendor = "myvendor_lbaas:Driver"``; installing it
next to the operator is all it takes.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

from lbaas.drivers.base import Driver, DriverError

GROUP = "lbaas.drivers"


class UnknownDriverError(DriverError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no driver named {name!r} is installed (installed: {', '.join(known) or 'none'});"
            f" fix spec.driver or install the driver's package",
            retryable=False,
            reason="UnknownDriver",
        )


class DriverRegistry:
    """Loads each driver once, on first use, and keeps the instance for every device."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drivers: dict[str, Driver] = {}

    def available(self) -> list[str]:
        return sorted({ep.name for ep in entry_points(group=GROUP)})

    def get(self, name: str) -> Driver:
        with self._lock:
            if name in self._drivers:
                return self._drivers[name]
            matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
            if not matches:
                raise UnknownDriverError(name, self.available())
            try:
                factory = matches[0].load()
                driver = factory()
            except Exception as exc:
                raise DriverError(
                    f"driver {name!r} failed to load: {exc}",
                    retryable=False,
                    reason="DriverLoadFailed",
                ) from exc
            if not isinstance(driver, Driver):
                raise DriverError(
                    f"entry point {name!r} does not provide an lbaas Driver",
                    retryable=False,
                    reason="DriverLoadFailed",
                )
            self._drivers[name] = driver
            return driver

    def close(self) -> None:
        with self._lock:
            for driver in self._drivers.values():
                driver.close()
            self._drivers.clear()
