"""Shared building blocks of the API: wire conventions, constrained types, conditions, status.

Every constraint here is stated once and enforced twice: by pydantic when the operator reads
an object, and by the API server through the generated CRD schema (bounds, patterns and CEL
rules carried in ``json_schema_extra``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are rejected by the schema."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _cel(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"rule": rule, "message": message, **extra}


def _check_ip(value: str) -> str:
    """As Kubernetes' ``isIP``: no zone id (``fe80::1%eth0``), no IPv4-mapped IPv6."""
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid IP address") from exc
    if "%" in value or getattr(parsed, "ipv4_mapped", None) is not None:
        raise ValueError(f"{value!r} is not a valid IP address (no zone, no IPv4-mapped IPv6)")
    return value


def _check_network(value: str) -> str:
    """As Kubernetes' ``isCIDR``: ``address/prefix`` (host bits may be set)."""
    address, slash, _ = value.partition("/")
    if not slash:
        raise ValueError(f"{value!r} is not a CIDR (10.0.0.0/24, fd00::/64)")
    _check_ip(address)
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR (10.0.0.0/24, fd00::/64)") from exc
    return value


def _check_pool_entry(value: str) -> str:
    """A CIDR, or a range of two addresses of one family, in either order: the range is every
    address from the lower to the higher (an order rule has no CEL the API server could check
    for IPv6, and the schema and the model must agree; see tests/fuzz)."""
    if "-" in value:
        start, _, end = value.partition("-")
        first, last = ipaddress.ip_address(_check_ip(start)), ipaddress.ip_address(_check_ip(end))
        if first.version != last.version:
            raise ValueError(f"{value!r} is not a valid IP range: both ends of one family")
        return value
    try:
        return _check_network(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR or an IP range") from exc


IPAddress = Annotated[
    str,
    AfterValidator(_check_ip),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 45,
            "x-kubernetes-validations": [
                _cel("isIP(self)", "must be a valid IPv4 or IPv6 address")
            ],
        }
    ),
]
"""An IPv4 or IPv6 address, checked by ``isIP`` on the server (Kubernetes >= 1.31)."""

AddressPoolEntry = Annotated[
    str,
    AfterValidator(_check_pool_entry),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 100,
            "x-kubernetes-validations": [
                _cel(
                    "isCIDR(self) || (self.split('-').size() == 2"
                    " && isIP(self.split('-')[0]) && isIP(self.split('-')[1])"
                    " && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family())",
                    "must be a CIDR (10.0.0.0/24) or an IP range of one family"
                    " (10.0.0.10-10.0.0.20)",
                )
            ],
        }
    ),
]


def _check_cidr(value: str) -> str:
    return _check_network(value)


CIDR = Annotated[
    str,
    AfterValidator(_check_cidr),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 49,
            "x-kubernetes-validations": [
                _cel("isCIDR(self)", "must be a CIDR such as 10.0.0.0/24 or fd00::/64")
            ],
        }
    ),
]
"""An IPv4 or IPv6 network in CIDR notation (``isCIDR`` on the server)."""

Port = Annotated[int, Field(ge=1, le=65535)]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""The name of another object in the same namespace (a Kubernetes DNS subdomain)."""


class Phase(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    ERROR = "Error"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(WireModel):
    """A Kubernetes condition (metav1.Condition): one entry per type, newest state only."""

    type: str = Field(
        max_length=316,
        pattern=r"^[A-Za-z][A-Za-z0-9_./-]*$",
        description="Scheduled, Programmed or Ready (Devices: Ready).",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the condition was set for."
    )
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        max_length=16,
        description="Conditions by type (Kubernetes API conventions).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


class LabelSelectorRequirement(WireModel):
    """One requirement of a label selector: key, operator and values."""

    key: str = Field(max_length=317, description="The label key.")
    operator: str = Field(
        description="In, NotIn, Exists or DoesNotExist.",
        json_schema_extra={"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
    )
    values: list[str] | None = Field(
        default=None, description="Values for In and NotIn; empty for Exists and DoesNotExist."
    )


class LabelSelector(WireModel):
    """A Kubernetes label selector (metav1.LabelSelector): all requirements must hold."""

    match_labels: dict[str, str] | None = Field(
        default=None, description="Labels that must be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="Set-based requirements."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            values = req.values or []
            if req.operator == "In" and (not present or labels[req.key] not in values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class ObjectStatus(WireModel):
    """What every kind reports: the Kubernetes-convention core of its status."""

    phase: Phase | None = Field(
        default=None, description="Pending (being applied), Active (served) or Error."
    )
    conditions: Conditions
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this status describes."
    )
    reason: str | None = Field(
        default=None, max_length=1024, description="CamelCase reason of the phase."
    )
    message: str | None = Field(
        default=None, max_length=32768, description="What happened, and what to do about it."
    )


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class KindInfo:
    """What the CRD generator needs beyond the schema."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[PrinterColumn, ...]
    description: str


class Resource(WireModel):
    """A whole object as read from the API server."""

    kind_info: ClassVar[KindInfo]

    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns else None

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation") or 0)


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")
PHASE = PrinterColumn("Phase", ".status.phase")
REASON = PrinterColumn("Reason", ".status.reason", priority=1)
MESSAGE = PrinterColumn("Message", ".status.message", priority=1)
