"""Operator settings: one documented place, read from ``LBAAS_*`` environment variables.

Every field below is also a value in the Helm chart and a row of the README's configuration
table. CLI flags of ``lbaas-operator run`` override the environment.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

ENV_PREFIX = "LBAAS_"


class OperatorSettings(BaseModel):
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty = all (cluster-wide)."
    )
    driver_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one driver call may take."
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
        default=0.05, ge=0, description="Seconds a VIP tree waits to gather a burst of changes."
    )
    log_format: Literal["text", "json"] = Field(default="text", description="Log format.")
    log_level: str = Field(default="INFO", description="Log level.")
    metrics_port: int = Field(default=8000, ge=0, le=65535, description="Metrics port; 0 = off.")
    health_port: int = Field(default=8090, ge=0, le=65535, description="Liveness port; 0 = off.")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            if name == "namespaces":
                values[name] = [ns.strip() for ns in raw.split(",") if ns.strip()]
            else:
                values[name] = raw
            del field
        return cls.model_validate(values)
