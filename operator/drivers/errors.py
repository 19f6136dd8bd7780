"""What a driver raises, and the machine reasons the core and the drivers share.

Every driver method documents which of these it raises (see ``lbaas.drivers.contract``). The
core turns them into status: ``reason`` is the CamelCase reason of the object's status and its
Warning Event, ``user_message`` the message a person reads, ``detail`` goes to the operator's log
only. Nothing here imports the API: a driver can be written and tested without it.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Reasons with a meaning the core acts on (a driver may use any other CamelCase reason)."""

    DRIVER_ERROR = "DriverError"
    """The default: something failed; retried with backoff when ``retryable``."""
    DEFERRED = "Deferred"
    """``apply_many`` had no time for this VIP in this call: the core sends it again at once,
    with the next batch, and shows no error for it."""
    DRIVER_TIMEOUT = "DriverTimeout"
    """The call's deadline passed (see ``lbaas.drivers.deadline``); retried."""
    LEASE_LOST = "LeaseLost"
    """The agent no longer holds the device's Lease: the call was not made (core only)."""
    STALE_OWNER = "StaleOwner"
    """The device has seen a newer owner (a higher fence)."""
    UNSUPPORTED = "Unsupported"
    """The driver cannot express what the tree asks for; names the feature."""
    INVALID_CONFIG = "InvalidConfig"
    """The Device's ``spec.config`` is refused by the driver."""
    INVALID_CONFIGURATION = "InvalidConfiguration"
    """The device refuses the configuration of one VIP (a value it cannot take)."""
    ADDRESS_IN_USE = "AddressInUse"
    ADDRESS_NOT_AVAILABLE = "AddressNotAvailable"
    ADDRESS_NOT_ALLOWED = "AddressNotAllowed"
    CERTIFICATE_INVALID = "CertificateInvalid"
    """A certificate or key the device was given cannot be used (bad PEM, key mismatch...)."""


class DriverError(Exception):
    """A failure the user should see.

    ``user_message`` goes to ``status.message`` and a Warning Event on the objects concerned;
    ``detail`` only to the operator's log. ``retryable`` errors are retried with backoff
    (device unreachable, busy); non-retryable ones wait until the spec or the device changes
    (the device refuses the configuration). ``reason`` is a CamelCase machine reason
    (:class:`Reason` lists those the core acts on).
    """

    def __init__(
        self,
        user_message: str,
        *,
        detail: str = "",
        retryable: bool = True,
        reason: str = Reason.DRIVER_ERROR,
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail
        self.retryable = retryable
        self.reason = str(reason)


class UnsupportedError(DriverError):
    """The driver cannot express what the tree asks for; retrying will not help.

    ``feature`` names the capability (``lbaas.drivers.capabilities``) it lacks, when one does:
    the status then says which, and the scheduler would not have placed such a VIP on it.
    """

    def __init__(self, user_message: str, *, detail: str = "", feature: str | None = None) -> None:
        super().__init__(user_message, detail=detail, retryable=False, reason=Reason.UNSUPPORTED)
        self.feature = feature


class StaleOwnerError(DriverError):
    """The device has seen a newer owner (a higher ``fence``): this call must not touch it."""

    def __init__(self, user_message: str, *, detail: str = "") -> None:
        super().__init__(user_message, detail=detail, retryable=True, reason=Reason.STALE_OWNER)


class DriverTimeout(DriverError):
    """The call's deadline passed; the device is left consistent and the call can be retried."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the driver call ran out of time while {what}; it will be retried",
            retryable=True,
            reason=Reason.DRIVER_TIMEOUT,
        )


def deferred(message: str = "") -> DriverError:
    """The answer of ``apply_many`` for a VIP it had no time for in this call."""
    return DriverError(
        message
        or "the device takes the VIPs waiting for it in turns, as many as fit in one driver"
        " call; this one comes in the next turn",
        retryable=True,
        reason=Reason.DEFERRED,
    )
