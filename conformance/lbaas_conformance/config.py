"""The device-config file: which device the kit drives, and what it may use on it.

A vendor writes one YAML file per device model it tests (see ``docs/drivers.md``)::

    name: conformance            # the Device's name in the handle (default "conformance")
    config:                      # the Device's spec.config, as the operator would pass it
      stateDir: "{workdir}/haproxy"
    labels: {}                   # the Device's labels
    credentials:                 # the data of its credentialsSecretRef (values: $ENV expanded)
      token: "${VENDOR_TOKEN}"
    addresses: [127.0.40.1, 127.0.40.2]   # VIP addresses the kit may use (at least 2)
    vipPorts: [20000, 20999]     # the ports it may use on them (an inclusive range)
    backends: [127.0.41.1]       # where the kit's own members listen (the device must reach it)
    backendPorts: [21000, 29999]
    traffic: true                # false: no data plane to send requests to (skips that layer)
    disturb: "rm {config[stateDir]}/conf.d/{namespace}__{name}.cfg"   # drift, optional
    teardown: "kill $(cat {config[stateDir]}/haproxy.pid)"             # after the run, optional
    timing: {settle: 10, health: 20, slack: 2, call: 30}

``{workdir}`` is a fresh directory per run; ``{config[key]}`` a value of ``config`` (after its
own substitution); in ``disturb``, also ``{key}``, ``{namespace}``, ``{name}``, ``{address}``
and ``{port}`` of the load balancer to disturb. Other braces are left alone (shell syntax).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_PLACEHOLDER = re.compile(r"\{(\w+)(?:\[([\w.-]+)\])?\}")


class ConfigError(ValueError):
    """The device-config file is invalid: the message says where."""


@dataclass(frozen=True)
class Timing:
    settle: float = 10.0
    """Seconds an applied change may take to show in traffic."""
    health: float = 20.0
    """Seconds a health change may take to show (monitor delay 1 s, 1 retry)."""
    slack: float = 2.0
    """Seconds a call may overrun its deadline (the deadline test)."""
    call: float = 30.0
    """The deadline of every other call, as the operator's driverTimeout."""


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    config: Mapping[str, Any]
    addresses: tuple[str, ...]
    backends: tuple[str, ...]
    vip_ports: tuple[int, int] = (20000, 20999)
    backend_ports: tuple[int, int] = (21000, 29999)
    labels: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    traffic: bool = True
    disturb: str | None = None
    teardown: str | None = None
    timing: Timing = field(default_factory=Timing)
    workdir: Path = Path(".")


def render(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with ``{name}`` and ``{name[key]}`` replaced for the names in ``values``."""

    def one(found: re.Match[str]) -> str:
        name, key = found.group(1), found.group(2)
        if name not in values:
            return found.group(0)
        value = values[name]
        if key is not None:
            if not isinstance(value, Mapping) or key not in value:
                raise ConfigError(f"{found.group(0)}: {name} has no {key!r}")
            value = value[key]
        return str(value)

    return _PLACEHOLDER.sub(one, template)


def _substituted(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, Mapping):
        return {k: _substituted(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v, values) for v in value]
    return value


def _range(data: Mapping[str, Any], key: str, default: tuple[int, int]) -> tuple[int, int]:
    found = data.get(key, list(default))
    if (
        not isinstance(found, list)
        or len(found) != 2
        or not all(isinstance(p, int) and 1 <= p <= 65535 for p in found)
        or found[0] > found[1]
    ):
        raise ConfigError(f"{key}: expected [first, last], two ports in order, got {found!r}")
    return (found[0], found[1])


def _addresses(data: Mapping[str, Any], key: str, at_least: int) -> tuple[str, ...]:
    found = data.get(key)
    if not isinstance(found, list) or len(found) < at_least:
        raise ConfigError(f"{key}: expected a list of at least {at_least} IP addresses")
    for address in found:
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            raise ConfigError(f"{key}: {address!r} is not an IP address") from None
    return tuple(str(a) for a in found)


def parse(data: Any, *, workdir: Path) -> DeviceConfig:
    """The device config from the file's YAML data (``workdir``: this run's scratch dir)."""
    if not isinstance(data, Mapping):
        raise ConfigError("the device-config file must hold a mapping")
    known = {
        "name",
        "config",
        "labels",
        "credentials",
        "addresses",
        "vipPorts",
        "backends",
        "backendPorts",
        "traffic",
        "disturb",
        "teardown",
        "timing",
    }
    if unknown := sorted(set(data) - known):
        raise ConfigError(f"unknown keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError("config: expected a mapping (the Device's spec.config)")
    config = _substituted(dict(config), {"workdir": workdir})
    values = {"workdir": workdir, "config": config}
    credentials = data.get("credentials") or {}
    if not isinstance(credentials, Mapping):
        raise ConfigError("credentials: expected a mapping of strings")
    timing = data.get("timing") or {}
    try:
        parsed_timing = Timing(**{k: float(v) for k, v in dict(timing).items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"timing: {exc}") from None
    traffic = data.get("traffic", True)
    if not isinstance(traffic, bool):
        raise ConfigError("traffic: expected true or false")
    return DeviceConfig(
        name=str(data.get("name", "conformance")),
        config=config,
        addresses=_addresses(data, "addresses", 2),
        backends=_addresses(data, "backends", 1) if traffic else tuple(data.get("backends", ())),
        vip_ports=_range(data, "vipPorts", (20000, 20999)),
        backend_ports=_range(data, "backendPorts", (21000, 29999)),
        labels={str(k): str(v) for k, v in dict(data.get("labels") or {}).items()},
        credentials={str(k): os.path.expandvars(str(v)) for k, v in credentials.items()},
        traffic=traffic,
        disturb=render(str(data["disturb"]), values) if data.get("disturb") else None,
        teardown=render(str(data["teardown"]), values) if data.get("teardown") else None,
        timing=parsed_timing,
        workdir=workdir,
    )


def load(path: Path, *, workdir: Path) -> DeviceConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return parse(data, workdir=workdir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
