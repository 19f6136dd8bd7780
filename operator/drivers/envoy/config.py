"""The Device ``spec.config`` of the Envoy driver, and the files it implies."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from lbaas.drivers.errors import DriverError, Reason

FILE_PATTERN = r"^/[A-Za-z0-9_./+-]*$"
MAX_SOCKET_PATH = 100
"""sun_path holds 108 bytes."""


class EnvoyDeviceConfig(BaseModel):
    """``spec.config`` of a Device whose driver is ``envoy``."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    state_dir: str = Field(min_length=2, max_length=200, pattern=FILE_PATTERN)
    managed: bool = True
    envoy_binary: str | None = Field(default=None, min_length=1, max_length=4096)
    admin_socket: str | None = Field(default=None, max_length=200, pattern=FILE_PATTERN)
    concurrency: int | None = Field(default=None, ge=1, le=128)
    drain_time_seconds: int = Field(default=600, ge=1, le=86400)
    start_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    update_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    endpoints: Literal["files", "inline"] = "files"
    """Where a pool's members go: an EDS file each (one inotify instance each), or in its
    cluster (CDS); see ``render.clusters``."""

    @model_validator(mode="after")
    def _socket_fits(self) -> EnvoyDeviceConfig:
        path = self.paths().admin_socket
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise ValueError(
                f"adminSocket {path} is longer than {MAX_SOCKET_PATH} bytes (a UNIX socket path"
                " limit); use a shorter stateDir or set adminSocket"
            )
        return self

    def paths(self) -> DevicePaths:
        root = Path(self.state_dir)
        xds = root / "xds"
        return DevicePaths(
            root=root,
            bootstrap=root / "bootstrap.json",
            lds=xds / "lds" / "lds.json",
            cds=xds / "cds" / "cds.json",
            eds=xds / "eds",
            sds=root / "secrets",
            trees=root / "trees",
            pid=root / "envoy.pid",
            log=root / "envoy.log",
            state=root / "driver-state.json",
            admin_socket=Path(self.admin_socket or root / "admin.sock"),
        )


@dataclass(frozen=True)
class DevicePaths:
    root: Path
    bootstrap: Path
    """What Envoy starts from: the node, the admin socket, where LDS and CDS come from."""
    lds: Path
    """Every listener of the device, in a directory of its own (``watched_directory``)."""
    cds: Path
    """Every cluster (pool) of the device, likewise."""
    eds: Path
    """One file of endpoints (members) per cluster, each watched on its own path."""
    sds: Path
    """One file per certificate and key (0600, in a 0700 directory)."""
    trees: Path
    """One ``<namespace>__<name>.json`` per load balancer: its tree, without key material."""
    pid: Path
    log: Path
    state: Path
    admin_socket: Path

    def dirs(self) -> list[tuple[Path, int]]:
        return [
            (self.root, 0o755),
            (self.lds.parent, 0o755),
            (self.cds.parent, 0o755),
            (self.eds, 0o755),
            (self.sds, 0o700),
            (self.trees, 0o700),
        ]


def invalid(message: str) -> DriverError:
    return DriverError(
        f"invalid envoy device config: {message}", retryable=False, reason=Reason.INVALID_CONFIG
    )


def parse_config(config: Mapping[str, Any]) -> EnvoyDeviceConfig:
    """Validate ``spec.config``; a clear, non-retryable ``InvalidConfig`` error otherwise."""
    try:
        parsed = EnvoyDeviceConfig.model_validate(dict(config))
    except ValidationError as exc:
        raise invalid(
            "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()
            )
        ) from exc
    if not os.path.isabs(parsed.state_dir) or ".." in Path(parsed.state_dir).parts:
        raise invalid("stateDir must be an absolute path without '..'")
    return parsed
