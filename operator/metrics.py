"""Prometheus metrics of the operator (served by ``start_server`` on the metrics port)."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from lbaas.traffic import TrafficExporter

RECONCILES = Counter(
    "lbaas_reconcile_total",
    "Reconciles of a VIP tree or a Device, by kind and outcome",
    ["kind", "outcome"],
)
RECONCILE_LATENCY = Histogram(
    "lbaas_reconcile_duration_seconds",
    "Time of one reconcile, by kind and outcome",
    ["kind", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DRIVER_CALLS = Counter(
    "lbaas_driver_calls_total",
    "Driver calls by driver, device, operation and outcome",
    ["driver", "device", "op", "outcome"],
)
DRIVER_LATENCY = Histogram(
    "lbaas_driver_call_duration_seconds",
    "Driver call latency by driver, device and operation",
    ["driver", "device", "op"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OBJECTS = Gauge("lbaas_objects", "Objects by kind and phase", ["kind", "phase"])
DEVICE_VIPS = Gauge("lbaas_device_vips", "VIPs bound to a device", ["device"])
DEVICE_CAPACITY = Gauge("lbaas_device_capacity", "maxVIPs of a device", ["device"])
MEMBER_STATUS = Gauge("lbaas_member_operating_status", "Members by operating status", ["status"])

# ---- fleet state from the caches, every process (lbaas.gauges) --------------------------------
OLDEST_IN_PHASE = Gauge(
    "lbaas_objects_oldest_in_phase_timestamp_seconds",
    "Unix time at which the object of a kind that has been Pending (or Error) the longest"
    " entered that phase, as this process saw it",
    ["kind", "phase"],
)
DEVICE_PHASE = Gauge(
    "lbaas_device_status_phase",
    "1 per Device, labelled with the phase and reason of its status (reason NoAgent: no live"
    " agent holds its Lease)",
    ["device", "phase", "reason"],
)
DEVICE_ADDRESSES = Gauge(
    "lbaas_device_addresses", "Addresses a Device's addressPool hands out", ["device"]
)
DEVICE_ADDRESSES_USED = Gauge(
    "lbaas_device_addresses_used",
    "Addresses of a Device's addressPool used by the VIPs bound to it",
    ["device"],
)
DEVICE_LEASE_TRANSITIONS = Gauge(
    "lbaas_device_lease_transitions",
    "leaseTransitions of a Device's Lease: owners it had since the Lease was created"
    " (controller and run processes, which watch the device Leases)",
    ["device"],
)

# ---- coordination (lbaas.agents) -------------------------------------------------------------
AGENT_DEVICES = Gauge("lbaas_agent_devices", "Devices whose Lease this agent holds", ["agent"])
LEASE_ACQUISITIONS = Counter(
    "lbaas_lease_acquisitions_total",
    "Leases taken, by kind (controller, device) and reason (new, released, handover,"
    " expired, resumed)",
    ["kind", "reason"],
)
LEASE_LOSSES = Counter(
    "lbaas_lease_losses_total",
    "Leases lost without releasing them, by kind and reason (overdue, taken, deleted)",
    ["kind", "reason"],
)
LEASE_HANDOVERS = Counter(
    "lbaas_lease_handovers_total",
    "Device Leases released on purpose, by reason (balance, unassigned, stopped)",
    ["reason"],
)
LEADER_CHANGES = Counter(
    "lbaas_leader_changes_total",
    "This process started or stopped leading the controllers",
    ["transition"],
)
IS_LEADER = Gauge("lbaas_leader", "1 while this process is the controller leader")


def start_server(port: int) -> None:
    if port:
        start_http_server(port)


API_WRITES = Counter(
    "lbaas_api_writes_total",
    "Writes to the Kubernetes API by HTTP method and resource",
    ["method", "resource"],
)
SERVICE_WRITES = Counter(
    "lbaas_service_object_writes_total",
    "Generated objects the Services controller applied or deleted, by kind and operation"
    " (unchanged ones are never sent)",
    ["kind", "op"],
)
API_LATENCY = Histogram(
    "lbaas_api_request_duration_seconds",
    "Kubernetes API request latency by HTTP method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
DRIFT_REPAIRS = Counter(
    "lbaas_drift_repairs_total",
    "Differences found between a device and its trees, and repaired, by device and kind",
    ["device", "kind"],
)

# ---- data-plane traffic of the devices this process owns (lbaas.traffic) ---------------------
TRAFFIC = TrafficExporter()
REGISTRY.register(TRAFFIC)
