"""The Device ``spec.config`` of the HAProxy driver, and the files it implies."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from lbaas.drivers.errors import DriverError

FILE_PATTERN = r"^/[A-Za-z0-9_./+-]*$"
"""Paths end up in the HAProxy configuration (sockets, server state), so: no spaces/quotes."""

MAX_SOCKET_PATH = 90
"""sun_path holds 107 bytes and HAProxy binds to ``<path>.<pid>.tmp`` before renaming."""


class HAProxyDeviceConfig(BaseModel):
    """``spec.config`` of a Device whose driver is ``haproxy``."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    state_dir: str = Field(
        min_length=2,
        max_length=200,
        pattern=FILE_PATTERN,
        description="Absolute directory for the config, per-VIP files, sockets and pid file.",
    )
    managed: bool = Field(
        default=True, description="The driver starts and supervises the HAProxy master itself."
    )
    haproxy_binary: str = Field(default="haproxy", min_length=1, max_length=4096)
    master_socket: str | None = Field(default=None, max_length=200, pattern=FILE_PATTERN)
    runtime_socket: str | None = Field(default=None, max_length=200, pattern=FILE_PATTERN)
    reload_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    hard_stop_after_seconds: int = Field(
        default=900, ge=1, le=86400, description="Old workers are stopped this long after a reload."
    )

    @model_validator(mode="after")
    def _sockets_fit(self) -> HAProxyDeviceConfig:
        paths = self.paths()
        for label, path in (
            ("masterSocket", paths.master_socket),
            ("runtimeSocket", paths.runtime_socket),
        ):
            if len(str(path).encode()) > MAX_SOCKET_PATH:
                raise ValueError(
                    f"{label} {path} is longer than {MAX_SOCKET_PATH} bytes (a UNIX socket path"
                    " limit); use a shorter stateDir or set the socket path explicitly"
                )
        return self

    def paths(self) -> DevicePaths:
        root = Path(self.state_dir)
        return DevicePaths(
            root=root,
            config=root / "haproxy.cfg",
            conf_d=root / "conf.d",
            maps=root / "maps",
            vips=root / "vips",
            pid=root / "haproxy.pid",
            state=root / "driver-state.json",
            server_state=root / "server-state",
            log=root / "haproxy.log",
            master_socket=Path(self.master_socket or root / "master.sock"),
            runtime_socket=Path(self.runtime_socket or root / "haproxy.sock"),
        )


@dataclass(frozen=True)
class DevicePaths:
    root: Path
    config: Path
    """global and defaults; the VIPs are in ``conf_d``"""
    conf_d: Path
    """one ``<namespace>__<name>.cfg`` per VIP the device serves"""
    maps: Path
    """the L7 map files of the VIPs served (``l7``; their names are relative to ``root``)"""
    vips: Path
    """one ``<namespace>__<name>.json`` per VIP bound to the device: the desired trees"""
    pid: Path
    state: Path
    server_state: Path
    log: Path
    master_socket: Path
    runtime_socket: Path


def parse_config(config: Mapping[str, Any]) -> HAProxyDeviceConfig:
    """Validate ``spec.config``; a clear, non-retryable ``InvalidConfig`` error otherwise."""
    try:
        parsed = HAProxyDeviceConfig.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise DriverError(
            f"invalid haproxy device config: {problems}", retryable=False, reason="InvalidConfig"
        ) from exc
    if not os.path.isabs(parsed.state_dir) or ".." in Path(parsed.state_dir).parts:
        raise DriverError(
            "invalid haproxy device config: stateDir must be an absolute path without '..'",
            retryable=False,
            reason="InvalidConfig",
        )
    return parsed
