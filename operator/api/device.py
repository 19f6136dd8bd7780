"""Device: one load-balancer device (an HAProxy host, a vendor appliance) in the inventory."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from lbaas.api.meta import (
    AGE,
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
    max_vips: int = Field(default=100, ge=0, le=100000, alias="maxVIPs")


class SecretRef(WireModel):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    namespace: str = Field(min_length=1, max_length=63)


class DeviceSpec(WireModel):
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
    capacity: Capacity = Field(default_factory=Capacity)
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
    credentials_secret_ref: SecretRef | None = None


class DeviceStatus(WireModel):
    phase: DevicePhase | None = None
    conditions: Conditions
    observed_generation: int | None = Field(default=None, ge=0)
    reason: str | None = Field(default=None, max_length=1024)
    message: str | None = Field(default=None, max_length=32768)
    vip_count: int | None = Field(default=None, ge=0, alias="vipCount")
    free_capacity: int | None = Field(default=None, ge=0)
    last_probe_time: datetime | None = None


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
            AGE,
            MESSAGE,
        ),
        description="A load-balancer device in the inventory, and how to drive it.",
    )
