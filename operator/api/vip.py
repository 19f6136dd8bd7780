"""VIP: a virtual address:port that clients connect to."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, JsonValue, model_validator

from lbaas.api.meta import (
    AGE,
    DNS_SUBDOMAIN_PATTERN,
    MESSAGE,
    PHASE,
    REASON,
    IPAddress,
    KindInfo,
    LabelSelector,
    ObjectName,
    ObjectStatus,
    Port,
    PrinterColumn,
    Resource,
    WireModel,
)
from lbaas.api.tls import ListenerTLS, TLSStatus


class Protocol(StrEnum):
    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    """TLS passed through to the members (the device sees no request)."""
    TERMINATED_HTTPS = "TERMINATED_HTTPS"
    """TLS terminated on the device (``spec.tls``); HTTP to the members, or TLS again."""
    UDP = "UDP"


class PersistenceType(StrEnum):
    SOURCE_IP = "SOURCE_IP"
    HTTP_COOKIE = "HTTP_COOKIE"
    APP_COOKIE = "APP_COOKIE"


COOKIE_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An RFC 6265 cookie-name token: no spaces, quotes, separators or control characters."""


class SessionPersistence(WireModel):
    """Keeps a client on the same member."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'APP_COOKIE' || has(self.cookieName)",
                    "message": "cookieName is required when type is APP_COOKIE",
                    "fieldPath": ".cookieName",
                }
            ]
        }
    }

    type: PersistenceType = Field(
        description="SOURCE_IP (client address), HTTP_COOKIE (a cookie the device inserts) or"
        " APP_COOKIE (the application's own cookie, named by cookieName)."
    )
    cookie_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=COOKIE_NAME_PATTERN,
        description="Cookie name: required for APP_COOKIE, optional for HTTP_COOKIE.",
    )

    @model_validator(mode="after")
    def _cookie_for_app_cookie(self) -> SessionPersistence:
        if self.type == PersistenceType.APP_COOKIE and not self.cookie_name:
            raise ValueError("cookieName is required when type is APP_COOKIE")
        return self


class OperatingStatus(StrEnum):
    ONLINE = "ONLINE"
    DEGRADED = "DEGRADED"
    ERROR = "ERROR"
    OFFLINE = "OFFLINE"
    NO_MONITOR = "NO_MONITOR"
    UNKNOWN = "UNKNOWN"


TLS_RULE = "tls is required when protocol is TERMINATED_HTTPS, and allowed only then"


HTTP_PROTOCOLS = ("HTTP", "TERMINATED_HTTPS")
"""Protocols whose requests the device sees (L7 policies, forwarded headers, cookies)."""
COOKIE_RULE_MESSAGE = (
    "cookie persistence (HTTP_COOKIE, APP_COOKIE) needs protocol HTTP (the device reads no"
    " cookie of TCP, HTTPS or UDP traffic); use SOURCE_IP"
)
UDP_LIMIT_MESSAGE = "a UDP VIP has no connections to limit: connectionLimit must be -1"
FORWARDED_MESSAGE = "forwardedHeaders needs an HTTP VIP (protocol HTTP or TERMINATED_HTTPS)"

_VIP_RULES: list[JsonValue] = [
    {
        "rule": "(has(self.protocol) && self.protocol == 'TERMINATED_HTTPS') == has(self.tls)",
        "message": TLS_RULE,
        "fieldPath": ".tls",
    },
    {
        "rule": "!has(self.forwardedHeaders) || !self.forwardedHeaders"
        f" || self.protocol in {list(HTTP_PROTOCOLS)}",
        "message": FORWARDED_MESSAGE,
        "fieldPath": ".forwardedHeaders",
    },
    {
        "rule": "!has(self.sessionPersistence) || self.sessionPersistence.type == 'SOURCE_IP'"
        f" || self.protocol in {list(HTTP_PROTOCOLS)}",
        "message": COOKIE_RULE_MESSAGE,
        "fieldPath": ".sessionPersistence",
    },
    {
        "rule": "self.protocol != 'UDP' || self.connectionLimit == -1",
        "message": UDP_LIMIT_MESSAGE,
        "fieldPath": ".connectionLimit",
    },
]


class VIPSpec(WireModel):
    """What clients connect to, and where the operator may put it."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": _VIP_RULES}}

    address: IPAddress | None = Field(
        default=None, description="Fixed address; empty = allocated from the device's addressPool."
    )
    port: Port = Field(description="TCP or UDP port clients connect to (1-65535).")
    protocol: Protocol = Field(
        default=Protocol.TCP,
        description="TCP, HTTP (the device sees requests), HTTPS (TLS passed through),"
        " TERMINATED_HTTPS (TLS ends on the device: spec.tls) or UDP (datagrams; only on devices"
        " whose driver declares protocol.udp).",
    )
    tls: ListenerTLS | None = Field(
        default=None,
        description="Certificates and TLS policy of a TERMINATED_HTTPS VIP (required then, and"
        " only then).",
    )
    connection_limit: int = Field(
        default=-1,
        ge=-1,
        le=10_000_000,
        description="Maximum concurrent connections; -1 = unlimited.",
    )
    session_persistence: SessionPersistence | None = Field(
        default=None, description="Keep each client on one member; unset = no persistence."
    )
    default_pool_ref: ObjectName | None = Field(
        default=None,
        description="The Pool (of this VIP) for requests no L7Policy takes; unset = its oldest"
        " Pool (so a Pool added later takes no traffic from it). Without any: HTTP requests get"
        " 503, TCP connections are closed.",
    )
    forwarded_headers: bool | None = Field(
        default=None,
        description="Add X-Forwarded-For, -Proto and -Port to requests (HTTP VIPs). Unset = on"
        " for HTTP where the device's driver supports it; true = required (a device without"
        " it cannot serve the VIP); false = off.",
    )
    device_selector: LabelSelector | None = Field(
        default=None, description="Only Devices whose labels match may take this VIP."
    )
    device_ref: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Pin the VIP to this Device.",
    )
    admin_state_up: bool = Field(
        default=True, description="false = the address stops listening (status OFFLINE)."
    )

    @model_validator(mode="after")
    def _protocol_rules(self) -> VIPSpec:
        """The CEL rules of ``_VIP_RULES``, for objects the API server did not check."""
        if (self.protocol == Protocol.TERMINATED_HTTPS) != (self.tls is not None):
            raise ValueError(TLS_RULE)
        if self.forwarded_headers and str(self.protocol) not in HTTP_PROTOCOLS:
            raise ValueError(FORWARDED_MESSAGE)
        persistence = self.session_persistence
        if (
            persistence is not None
            and persistence.type != PersistenceType.SOURCE_IP
            and str(self.protocol) not in HTTP_PROTOCOLS
        ):
            raise ValueError(COOKIE_RULE_MESSAGE)
        if self.protocol == Protocol.UDP and self.connection_limit != -1:
            raise ValueError(UDP_LIMIT_MESSAGE)
        return self


class VIPStatus(ObjectStatus):
    """Provisioning (phase, conditions) and operation (operatingStatus), kept apart."""

    device: str | None = Field(
        default=None, max_length=253, description="The Device the VIP is bound to."
    )
    address: str | None = Field(
        default=None, max_length=45, description="The address the VIP is served on."
    )
    operating_status: OperatingStatus | None = Field(
        default=None,
        description="ONLINE (all members up), DEGRADED (some down), ERROR (none serving),"
        " OFFLINE (admin down, or its device cannot serve), NO_MONITOR, or UNKNOWN (the device"
        " cannot tell its members' health now).",
    )
    tls: TLSStatus | None = Field(
        default=None,
        description="TERMINATED_HTTPS: the certificates of certificateRefs as last read (names,"
        " expiry, fingerprints; never keys).",
    )


class VIP(Resource):
    spec: VIPSpec
    status: VIPStatus = Field(default_factory=VIPStatus)

    kind_info = KindInfo(
        kind="VIP",
        plural="vips",
        singular="vip",
        short_names=("vip",),
        namespaced=True,
        spec=VIPSpec,
        status=VIPStatus,
        columns=(
            PHASE,
            PrinterColumn("Device", ".status.device"),
            PrinterColumn("Address", ".status.address"),
            PrinterColumn("Port", ".spec.port", "integer"),
            PrinterColumn("Protocol", ".spec.protocol"),
            PrinterColumn("Operating", ".status.operatingStatus"),
            AGE,
            REASON,
            MESSAGE,
        ),
        description="A virtual address:port served by a load-balancer device.",
    )
