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
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    ERROR = "ERROR"
    NO_MONITOR = "NO_MONITOR"
    DRAINING = "DRAINING"


class MemberSpec(WireModel):
    pool_ref: ObjectName = Field(description="Name of the Pool (same namespace).")
    address: IPAddress
    port: Port
    weight: int = Field(
        default=1, ge=0, le=256, description="Relative share of new connections; 0 = none (drain)."
    )
    backup: bool = False
    admin_state_up: bool = True
    monitor_address: IPAddress | None = None
    monitor_port: Port | None = None


class MemberStatus(ObjectStatus):
    operating_status: MemberOperatingStatus | None = None


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
