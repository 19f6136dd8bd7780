"""The API: pydantic models of the six kinds, the single source of the CRD schemas."""

from lbaas.api.device import Device, DeviceSpec, DeviceStatus
from lbaas.api.healthmonitor import HealthMonitor, HealthMonitorSpec, HealthMonitorStatus
from lbaas.api.l7policy import L7Policy, L7PolicySpec, L7PolicyStatus
from lbaas.api.member import Member, MemberSpec, MemberStatus
from lbaas.api.meta import KindInfo
from lbaas.api.pool import Pool, PoolSpec, PoolStatus
from lbaas.api.vip import VIP, VIPSpec, VIPStatus

KINDS: tuple[KindInfo, ...] = (
    Device.kind_info,
    VIP.kind_info,
    Pool.kind_info,
    Member.kind_info,
    HealthMonitor.kind_info,
    L7Policy.kind_info,
)

__all__ = [
    "KINDS",
    "VIP",
    "Device",
    "DeviceSpec",
    "DeviceStatus",
    "HealthMonitor",
    "HealthMonitorSpec",
    "HealthMonitorStatus",
    "KindInfo",
    "L7Policy",
    "L7PolicySpec",
    "L7PolicyStatus",
    "Member",
    "MemberSpec",
    "MemberStatus",
    "Pool",
    "PoolSpec",
    "PoolStatus",
    "VIPSpec",
    "VIPStatus",
]
