"""Pool: the backend group of a VIP (one pool per VIP)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from lbaas.api.meta import (
    AGE,
    MESSAGE,
    PHASE,
    REASON,
    KindInfo,
    ObjectName,
    ObjectStatus,
    PrinterColumn,
    Resource,
    WireModel,
)
from lbaas.api.vip import OperatingStatus, Protocol


class LBMethod(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_CONNECTIONS = "LEAST_CONNECTIONS"
    SOURCE_IP = "SOURCE_IP"


class PoolSpec(WireModel):
    vip_ref: ObjectName = Field(description="Name of the VIP (same namespace) this pool serves.")
    protocol: Protocol = Protocol.TCP
    lb_method: LBMethod = LBMethod.ROUND_ROBIN
    admin_state_up: bool = True


class PoolStatus(ObjectStatus):
    operating_status: OperatingStatus | None = None


class Pool(Resource):
    spec: PoolSpec
    status: PoolStatus = Field(default_factory=PoolStatus)

    kind_info = KindInfo(
        kind="Pool",
        plural="pools",
        singular="pool",
        short_names=("lbpool",),
        namespaced=True,
        spec=PoolSpec,
        status=PoolStatus,
        columns=(
            PrinterColumn("VIP", ".spec.vipRef"),
            PHASE,
            PrinterColumn("Method", ".spec.lbMethod"),
            AGE,
            REASON,
            MESSAGE,
        ),
        description="The backend group of a VIP.",
    )
