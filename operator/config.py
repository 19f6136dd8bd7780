"""Operator settings: one documented place, read from ``LBAAS_*`` environment variables.

Every field below is also a value in the Helm chart and a row of the README's configuration
table. CLI flags of ``lbaas-operator`` override the environment.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

ENV_PREFIX = "LBAAS_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_agent_id() -> str:
    """The host name: a pod's name in Kubernetes, unique among the agents."""
    return socket.gethostname()


def default_lease_namespace() -> str:
    """The pod's namespace when running in a pod, else ``default``."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def parse_labels(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` → dict; raises ValueError naming a malformed entry."""
    labels: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"agent label {part!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


class OperatorSettings(BaseModel):
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty = all (cluster-wide)."
    )
    driver_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds one driver call may take (must fit in the device lease, see"
        " leaseDuration).",
    )
    driver_workers: int = Field(
        default=8, ge=1, le=256, description="Threads running driver calls."
    )
    api_connections: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Concurrent Kubernetes API requests besides watch streams (bounds memory).",
    )
    probe_interval: float = Field(default=10.0, gt=0, description="Seconds between device probes.")
    member_status_interval: float = Field(
        default=5.0, gt=0, description="Seconds between reads of member health from devices."
    )
    traffic_metrics: Literal["member", "pool", "off"] = Field(
        default="member",
        description="Data-plane traffic series the agents export (docs/metrics.md, section"
        " 3): member = per VIP, pool and member; pool = no member series; off = none.",
    )
    resync_interval: float = Field(
        default=60.0,
        gt=0,
        description="Seconds within which every VIP tree is verified against its device"
        " (spread over the interval); drift is repaired.",
    )
    parent_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a child waits for its parent before it turns Error ParentNotFound.",
    )
    delete_attempts: int = Field(
        default=5, ge=1, description="Failed driver deletes before an object is released anyway."
    )
    retry_backoff_max: float = Field(
        default=60.0, gt=0, description="Longest retry delay, seconds."
    )
    debounce: float = Field(
        default=0.05,
        ge=0,
        description="Seconds a VIP tree gathers further changes after applying one at once.",
    )
    pending_delay: float = Field(
        default=0.5,
        ge=0,
        description="An apply slower than this shows Pending first; faster ones go straight"
        " to Active (saves API writes).",
    )
    agent_id: str = Field(
        default_factory=default_agent_id,
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="This agent's identity in Leases; default: the host name (the pod name).",
    )
    agent_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of this agent, matched by Devices' spec.agentSelector (k=v,...).",
    )
    lease_namespace: str = Field(
        default_factory=default_lease_namespace,
        min_length=1,
        max_length=63,
        description="Namespace of the Leases (controller leader, agents, devices); in a pod:"
        " its namespace.",
    )
    lease_duration: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a Lease is valid after its last renewal; a dead holder is replaced"
        " after this.",
    )
    lease_renew_period: float = Field(
        default=2.0, gt=0, description="Seconds between Lease renewals and ownership checks."
    )
    services: bool = Field(
        default=True,
        description="Serve Services of type LoadBalancer (see loadBalancerClass); false ="
        " Services and EndpointSlices are not watched (no RBAC on them needed).",
    )
    load_balancer_class: str = Field(
        default="lbaas.dev/lbaas",
        min_length=1,
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="Services of type LoadBalancer whose spec.loadBalancerClass is this get VIP"
        " trees from the operator (label-style name, e.g. lbaas.dev/lbaas).",
    )
    default_load_balancer_class: bool = Field(
        default=False,
        description="Also serve LoadBalancer Services that name no loadBalancerClass (make"
        " the operator the cluster's default load balancer; at most one implementation"
        " should).",
    )
    log_format: Literal["text", "json"] = Field(default="text", description="Log format.")
    log_level: str = Field(default="INFO", description="Log level.")
    metrics_port: int = Field(default=8000, ge=0, le=65535, description="Metrics port; 0 = off.")
    health_port: int = Field(default=8090, ge=0, le=65535, description="Liveness port; 0 = off.")

    @model_validator(mode="after")
    def _driver_calls_fit_in_a_lease(self) -> OperatorSettings:
        # An agent starts a driver call only while its lease stays valid for the whole call;
        # with renewals every renew period, that needs this much room (see lbaas.agents).
        if self.driver_timeout + self.lease_renew_period + 1 > self.lease_duration:
            raise ValueError(
                f"driverTimeout ({self.driver_timeout:g}s) + leaseRenewPeriod"
                f" ({self.lease_renew_period:g}s) + 1s must not exceed leaseDuration"
                f" ({self.lease_duration:g}s): a driver call must end before the lease of its"
                " device could expire"
            )
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            if name == "namespaces":
                values[name] = [ns.strip() for ns in raw.split(",") if ns.strip()]
            elif name == "agent_labels":
                values[name] = parse_labels(raw)
            else:
                values[name] = raw
        return cls.model_validate(values)
