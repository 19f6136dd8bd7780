"""Find drivers by name through Python entry points (group ``lbaas.drivers``).

A vendor ships its driver as its own distribution declaring
``[project.entry-points."lbaas.drivers"] myvendor = "myvendor_lbaas:Driver"``; installing it
next to the operator is all it takes. A driver of the deprecated contract 0
(``lbaas.drivers.base.Driver``) is wrapped in the compatibility shim
(:class:`lbaas.drivers.legacy.LegacyDriver`) with a warning in the log, until 0.3.0.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from lbaas.drivers import base
from lbaas.drivers.capabilities import unknown
from lbaas.drivers.contract import Driver
from lbaas.drivers.errors import DriverError
from lbaas.drivers.legacy import REMOVED_IN, LegacyDriver

GROUP = "lbaas.drivers"
log = logging.getLogger(__name__)


class UnknownDriverError(DriverError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no driver named {name!r} is installed (installed: {', '.join(known) or 'none'});"
            f" fix spec.driver or install the driver's package",
            retryable=False,
            reason="UnknownDriver",
        )


def adopt(name: str, loaded: object) -> Driver:
    """The contract-1 driver for what entry point ``name`` gave (a shim around contract 0)."""
    if isinstance(loaded, Driver):
        strange = unknown(loaded.features)
        if strange:
            log.warning("driver %r declares features no one knows: %s", name, ", ".join(strange))
        return loaded
    if isinstance(loaded, base.Driver):
        log.warning(
            "driver %r implements the deprecated driver contract 0 (lbaas.drivers.base.Driver):"
            " it runs through a compatibility shim, which serves one listener and one pool per"
            " VIP and is removed in %s; port it to lbaas.drivers.contract (docs/drivers.md)",
            name,
            REMOVED_IN,
        )
        return LegacyDriver(loaded)
    raise DriverError(
        f"entry point {name!r} does not provide an lbaas Driver",
        retryable=False,
        reason="DriverLoadFailed",
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
                loaded = matches[0].load()()
            except Exception as exc:
                raise DriverError(
                    f"driver {name!r} failed to load: {exc}",
                    retryable=False,
                    reason="DriverLoadFailed",
                ) from exc
            driver = adopt(name, loaded)
            self._drivers[name] = driver
            return driver

    def add(self, name: str, driver: object) -> Driver:
        """Use ``driver`` (an instance, either contract) under ``name``, ahead of any entry point
        of that name: drivers built in code (tests, embedding the operator)."""
        adopted = adopt(name, driver)
        with self._lock:
            self._drivers[name] = adopted
        return adopted

    def close(self) -> None:
        with self._lock:
            for driver in self._drivers.values():
                driver.close()
            self._drivers.clear()
