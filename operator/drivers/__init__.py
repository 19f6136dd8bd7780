"""Drivers: the contract (``contract``), its data model (``model``) and vocabulary of
features (``capabilities``), the errors (``errors``) and call deadline (``deadline``) they
share, parts most drivers need (``toolkit``), plugins found by name (``registry``), and the
deprecated contract 0 with its shim (``base``, ``legacy``)."""

from lbaas.drivers.contract import (
    CONTRACT_VERSION,
    DeviceHandle,
    Drift,
    Driver,
    ProbeResult,
    Statuses,
)
from lbaas.drivers.errors import DriverError, Reason, StaleOwnerError, UnsupportedError
from lbaas.drivers.model import MODEL_VERSION, LoadBalancer

__all__ = [
    "CONTRACT_VERSION",
    "MODEL_VERSION",
    "DeviceHandle",
    "Drift",
    "Driver",
    "DriverError",
    "LoadBalancer",
    "ProbeResult",
    "Reason",
    "StaleOwnerError",
    "Statuses",
    "UnsupportedError",
]
