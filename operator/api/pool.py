"""Pool: a backend group of a VIP (a VIP has any number: its default, and those its
L7Policies forward to)."""

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
from lbaas.api.tls import BackendTLS
from lbaas.api.vip import OperatingStatus


class Protocol(StrEnum):
    """What the members speak (TLS to them: ``spec.tls``)."""

    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    UDP = "UDP"
    """Datagrams; only under a UDP VIP (else ``ProtocolMismatch``)."""


class LBMethod(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_CONNECTIONS = "LEAST_CONNECTIONS"
    SOURCE_IP = "SOURCE_IP"


class PoolSpec(WireModel):
    """How traffic of a VIP is spread over the members."""

    vip_ref: ObjectName = Field(
        description="Name of the VIP (same namespace) this pool serves (one of its pools: its"
        " defaultPoolRef, or one its L7Policies forward to)."
    )
    protocol: Protocol = Field(
        default=Protocol.TCP,
        description="Protocol to the members (TCP, HTTP, HTTPS or UDP); UDP"
        " if and only if its VIP is UDP.",
    )
    lb_method: LBMethod = Field(
        default=LBMethod.ROUND_ROBIN,
        description="ROUND_ROBIN, LEAST_CONNECTIONS or SOURCE_IP (hash of the client address).",
    )
    admin_state_up: bool = Field(
        default=True, description="false = no member gets traffic (status OFFLINE)."
    )
    tls: BackendTLS | None = Field(
        default=None,
        description="TLS to the members (re-encryption): CAs to verify them, the SNI to send.",
    )


class PoolStatus(ObjectStatus):
    """Provisioning phase plus the roll-up of its members' health."""

    operating_status: OperatingStatus | None = Field(
        default=None, description="Roll-up of the members, as on the VIP."
    )


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
