"""Drivers: the contract in ``base``, plugins found by name in ``registry``."""

from lbaas.drivers.base import (
    DeviceHandle,
    Driver,
    DriverError,
    LoadBalancer,
    MemberEntry,
    ProbeResult,
    UnsupportedError,
)

__all__ = [
    "DeviceHandle",
    "Driver",
    "DriverError",
    "LoadBalancer",
    "MemberEntry",
    "ProbeResult",
    "UnsupportedError",
]
