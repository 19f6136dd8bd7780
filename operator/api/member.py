"""Member: one backend server of a pool."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from lbaas.api.meta import (
    AGE,
    MESSAGE,
    PHASE,
    REASON,
    IPAddress,
    KindInfo,
    ObjectName,
    ObjectStatus,
    Port,
    PrinterColumn,
    Resource,
    WireModel,
)


class MemberOperatingStatus(StrEnum):
    """A member's health as its device sees it.

    UNKNOWN means the device cannot tell now (it is NotReady, or did not answer the health
    read): the member may be serving or not; it is never reported ONLINE on a guess.
    """

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    ERROR = "ERROR"
    NO_MONITOR = "NO_MONITOR"
    DRAINING = "DRAINING"
    UNKNOWN = "UNKNOWN"


class MemberSpec(WireModel):
    """One backend server: where it listens and how much traffic it gets."""

    pool_ref: ObjectName = Field(description="Name of the Pool (same namespace).")
    address: IPAddress = Field(
        description="Backend address; must lie in the device's memberNetworks."
    )
    port: Port = Field(description="Backend port.")
    weight: int = Field(
        default=1, ge=0, le=256, description="Relative share of new connections; 0 = none (drain)."
    )
    backup: bool = Field(default=False, description="Serves only when no non-backup member is up.")
    admin_state_up: bool = Field(
        default=True, description="false = taken out of service (status OFFLINE)."
    )
    monitor_address: IPAddress | None = Field(
        default=None, description="Health-check this address instead of address."
    )
    monitor_port: Port | None = Field(
        default=None, description="Health-check this port instead of port."
    )


class MemberStatus(ObjectStatus):
    """Provisioning phase plus the member's health as the device reports it."""

    operating_status: MemberOperatingStatus | None = Field(
        default=None,
        description="ONLINE, OFFLINE (admin down), ERROR (failing checks), DRAINING (weight 0),"
        " NO_MONITOR (no health monitor) or UNKNOWN (the device cannot tell now).",
    )


class Member(Resource):
    spec: MemberSpec
    status: MemberStatus = Field(default_factory=MemberStatus)

    kind_info = KindInfo(
        kind="Member",
        plural="members",
        singular="member",
        short_names=("lbmember",),
        namespaced=True,
        spec=MemberSpec,
        status=MemberStatus,
        columns=(
            PrinterColumn("Pool", ".spec.poolRef"),
            PrinterColumn("Address", ".spec.address"),
            PrinterColumn("Port", ".spec.port", "integer"),
            PrinterColumn("Weight", ".spec.weight", "integer"),
            PHASE,
            PrinterColumn("Operating", ".status.operatingStatus"),
            AGE,
            REASON,
            MESSAGE,
        ),
        description="One backend server of a pool.",
    )
