"""HealthMonitor: how a pool's members are checked."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

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


class MonitorType(StrEnum):
    PING = "PING"
    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"


class HTTPMethod(StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"
    PATCH = "PATCH"
    TRACE = "TRACE"
    CONNECT = "CONNECT"


URL_PATH_PATTERN = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$"
"""An origin-form path (RFC 3986 pchar, '/', '?'): no spaces, quotes or control characters."""

EXPECTED_CODES_PATTERN = r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*$"


class HealthMonitorSpec(WireModel):
    """How and how often the members of a pool are checked."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.timeout <= self.delay",
                    "message": "timeout must be less than or equal to delay",
                    "fieldPath": ".timeout",
                }
            ]
        }
    }

    pool_ref: ObjectName = Field(description="Name of the Pool (same namespace) to check.")
    type: MonitorType = Field(
        description="PING (a TCP connect on HAProxy), TCP (connect), HTTP or HTTPS (a request)."
    )
    delay: int = Field(default=5, ge=1, le=3600, description="Seconds between checks.")
    timeout: int = Field(default=3, ge=1, le=3600, description="Seconds to wait for an answer.")
    max_retries: int = Field(
        default=3, ge=1, le=10, description="Successes in a row that bring a member up."
    )
    max_retries_down: int = Field(
        default=3, ge=1, le=10, description="Failures in a row that take a member down."
    )
    http_method: HTTPMethod = Field(
        default=HTTPMethod.GET, description="HTTP method of HTTP/HTTPS checks."
    )
    url_path: str = Field(
        default="/",
        min_length=1,
        max_length=2048,
        pattern=URL_PATH_PATTERN,
        description="Path requested by HTTP/HTTPS checks.",
    )
    expected_codes: str = Field(
        default="200",
        max_length=256,
        pattern=EXPECTED_CODES_PATTERN,
        description='Status codes that count as healthy: "200", "200,202" or "200-204".',
    )
    admin_state_up: bool = Field(
        default=True, description="false = no checks (members report NO_MONITOR)."
    )

    @model_validator(mode="after")
    def _timeout_within_delay(self) -> HealthMonitorSpec:
        if self.timeout > self.delay:
            raise ValueError("timeout must be less than or equal to delay")
        return self

    def expected_code_ranges(self) -> list[tuple[int, int]]:
        ranges = []
        for part in self.expected_codes.split(","):
            low, _, high = part.partition("-")
            ranges.append((int(low), int(high or low)))
        return ranges


class HealthMonitorStatus(ObjectStatus):
    """Provisioning phase of the monitor."""


class HealthMonitor(Resource):
    spec: HealthMonitorSpec
    status: HealthMonitorStatus = Field(default_factory=HealthMonitorStatus)

    kind_info = KindInfo(
        kind="HealthMonitor",
        plural="healthmonitors",
        singular="healthmonitor",
        short_names=("hm", "lbhm"),
        namespaced=True,
        spec=HealthMonitorSpec,
        status=HealthMonitorStatus,
        columns=(
            PrinterColumn("Pool", ".spec.poolRef"),
            PrinterColumn("Type", ".spec.type"),
            PrinterColumn("Delay", ".spec.delay", "integer"),
            PHASE,
            AGE,
            REASON,
            MESSAGE,
        ),
        description="Health checks for the members of a pool.",
    )
