"""Device: one load-balancer device (an HAProxy host, a vendor appliance) in the inventory."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from lbaas.api.meta import (
    AGE,
    CIDR,
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    MESSAGE,
    AddressPoolEntry,
    Conditions,
    KindInfo,
    LabelSelector,
    PrinterColumn,
    Resource,
    WireModel,
)


class DevicePhase(StrEnum):
    READY = "Ready"
    NOT_READY = "NotReady"
    ERROR = "Error"


class Capacity(WireModel):
    """How many VIPs the device takes, in all and per namespace (tenant)."""

    max_vips: int = Field(
        default=100, ge=0, le=100000, alias="maxVIPs", description="VIPs the device holds at most."
    )
    max_vips_per_namespace: int | None = Field(
        default=None,
        ge=0,
        le=100000,
        alias="maxVIPsPerNamespace",
        description="VIPs one namespace may have on this device; unset = no per-namespace limit."
        " Beyond it a VIP goes to another device, else Error QuotaExceeded.",
    )


class SecretRef(WireModel):
    """A Secret by namespace and name."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Secret name."
    )
    namespace: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN, description="Secret namespace."
    )


class VIPAddressPolicy(StrEnum):
    POOL_ONLY = "PoolOnly"
    ANY = "Any"


class FailoverPolicy(StrEnum):
    NONE = "None"
    RESCHEDULE = "Reschedule"


class Failover(WireModel):
    """What happens to the device's VIPs when it stays NotReady (Octavia's amphora failover)."""

    policy: FailoverPolicy = Field(
        default=FailoverPolicy.NONE,
        description="None: VIPs wait for the device to come back. Reschedule: after afterSeconds"
        " NotReady, VIPs move to another eligible Device (their address is kept when it is"
        " explicit or inside the new device's addressPool, else a new one is allocated).",
    )
    after_seconds: int = Field(
        default=60,
        ge=1,
        le=86400,
        description="Seconds the device must be NotReady before its VIPs move.",
    )


class DeviceSpec(WireModel):
    """A device in the inventory: its driver, who may use it, and how much it takes."""

    driver: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
        description="Name of the driver plugin (entry point in group lbaas.drivers).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Driver-specific settings, validated by the driver.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    capacity: Capacity = Field(
        default_factory=Capacity, description="VIPs the device takes, in all and per namespace."
    )
    address_pool: list[AddressPoolEntry] = Field(
        default_factory=list,
        max_length=64,
        description="CIDRs or start-end ranges that VIPs without an address are given one from.",
    )
    allowed_namespaces: list[str] | None = Field(
        default=None,
        max_length=256,
        description="Namespaces whose VIPs may use this device; unset means all.",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Label selector on the VIP's namespace labels; unset means all.",
    )
    schedulable: bool = Field(
        default=True, description="false = cordoned: keeps its VIPs, takes no new ones."
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret whose data the driver gets as credentials (never shown in status,"
        " Events or logs).",
    )
    vip_address_policy: VIPAddressPolicy = Field(
        default=VIPAddressPolicy.POOL_ONLY,
        alias="vipAddressPolicy",
        description="PoolOnly: a VIP's explicit spec.address must lie in addressPool. Any: any"
        " unicast address (for devices owned by one tenant). Unspecified (0.0.0.0, ::) and"
        " multicast addresses are never allowed.",
    )
    member_networks: list[CIDR] | None = Field(
        default=None,
        max_length=64,
        description="CIDRs that members and health-check addresses must lie in. Unset: any"
        " address except loopback, link-local, unspecified and multicast, which are allowed"
        " only when a listed network contains them.",
    )
    agent_selector: LabelSelector | None = Field(
        default=None,
        description="Only agents whose labels match may own this device (e.g. the agent on"
        " the host where a managed HAProxy runs); unset = any agent.",
    )
    failover: Failover = Field(
        default_factory=Failover,
        description="Moving VIPs off a device that stays NotReady; default: they wait.",
    )


class DeviceStatus(WireModel):
    """What the owning agent and the controller observed about the device."""

    phase: DevicePhase | None = Field(
        default=None, description="Ready, NotReady (probe failed or no agent) or Error (config)."
    )
    conditions: Conditions
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this status describes."
    )
    reason: str | None = Field(default=None, max_length=1024, description="CamelCase reason.")
    message: str | None = Field(default=None, max_length=32768, description="Human message.")
    vip_count: int | None = Field(
        default=None, ge=0, alias="vipCount", description="VIPs bound to the device."
    )
    free_capacity: int | None = Field(
        default=None, ge=0, description="maxVIPs minus the VIPs bound to the device."
    )
    last_probe_time: datetime | None = Field(default=None, description="Time of the last probe.")
    agent: str | None = Field(
        default=None, max_length=253, description="The agent that owns (drives) the device now."
    )
    not_ready_since: datetime | None = Field(
        default=None, description="When the device last turned NotReady (for failover)."
    )
    features: list[str] | None = Field(
        default=None,
        max_length=256,
        description="What the device's driver supports (docs/drivers.md lists the features);"
        " VIPs asking for anything else are not placed on it.",
    )
    feature_summary: str | None = Field(
        default=None,
        max_length=256,
        description="The feature profiles covered (L4, HTTP, TLS, L7, UDP, OPS).",
    )


class Device(Resource):
    spec: DeviceSpec
    status: DeviceStatus = Field(default_factory=DeviceStatus)

    kind_info = KindInfo(
        kind="Device",
        plural="devices",
        singular="device",
        short_names=("lbdev",),
        namespaced=False,
        spec=DeviceSpec,
        status=DeviceStatus,
        columns=(
            PrinterColumn("Driver", ".spec.driver"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("VIPs", ".status.vipCount", "integer"),
            PrinterColumn("Free", ".status.freeCapacity", "integer"),
            PrinterColumn("Schedulable", ".spec.schedulable", "boolean"),
            PrinterColumn("Agent", ".status.agent"),
            PrinterColumn("Features", ".status.featureSummary"),
            AGE,
            MESSAGE,
        ),
        description="A load-balancer device in the inventory, and how to drive it.",
    )
