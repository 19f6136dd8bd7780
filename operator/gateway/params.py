"""A GatewayClass's parameters: a ConfigMap in the operator's namespace (pure).

``spec.parametersRef`` of a GatewayClass may name a ConfigMap (group ``""``, kind
``ConfigMap``) in the operator's own namespace: the class is cluster infrastructure, set up by
whoever runs the operator, and the operator reads ConfigMaps there only (no cluster-wide
ConfigMap access). Its keys (docs/gateway-api.md):

- ``deviceSelector``: a label selector (YAML) on Devices: the devices the class's Gateways may
  use (their VIPs' ``deviceSelector``), and whose features the class announces;
- ``staticAddresses``: ``Allowed`` (default: a Gateway's ``spec.addresses`` is honoured, within
  the device's address policy) or ``Denied``;
- ``lbMethod``: the pools' method (``ROUND_ROBIN`` default, ``LEAST_CONNECTIONS``,
  ``SOURCE_IP``);
- ``healthMonitor``: ``TCP`` (default: a TCP check of every backend) or ``None``.

A bad reference or value makes the class ``Accepted=False`` ``InvalidParameters``, with the
problem in the message, and so its Gateways too (nothing is generated from a class whose
configuration is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError

from lbaas.api.meta import LabelSelector, WireModel
from lbaas.api.pool import LBMethod
from lbaas.gateway.world import World
from lbaas.views import spec_of


class Parameters(WireModel):
    model_config = ConfigDict(extra="forbid")

    device_selector: LabelSelector | None = Field(default=None)
    static_addresses: Literal["Allowed", "Denied"] = "Allowed"
    lb_method: LBMethod = LBMethod.ROUND_ROBIN
    health_monitor: Literal["TCP", "None"] = "TCP"


def _parse(data: Mapping[str, Any]) -> Parameters:
    raw: dict[str, Any] = dict(data)
    if "deviceSelector" in raw:
        raw["deviceSelector"] = yaml.safe_load(str(raw["deviceSelector"])) or None
    return Parameters.model_validate(raw)


def parameters(gateway_class: Mapping[str, Any], world: World, namespace: str) -> Parameters | str:
    """The class's parameters, or what is wrong with them (for ``InvalidParameters``);
    ``namespace``: the operator's, where the ConfigMap must be."""
    ref = spec_of(gateway_class).get("parametersRef")
    if not ref:
        return Parameters()
    if (ref.get("group") or "", ref.get("kind")) != ("", "ConfigMap"):
        return (
            f"parametersRef names a {ref.get('kind')} of group {ref.get('group')!r}: this"
            ' controller takes a ConfigMap (group "", kind ConfigMap)'
        )
    if ref.get("namespace") != namespace:
        return (
            f"parametersRef names a ConfigMap in namespace {ref.get('namespace') or '(none)'}:"
            f" it must be in the operator's namespace {namespace}"
        )
    config_map = world.get("ConfigMap", namespace, str(ref.get("name")))
    if config_map is None:
        return f"ConfigMap {namespace}/{ref.get('name')} not found"
    try:
        return _parse(config_map.get("data") or {})
    except (ValidationError, yaml.YAMLError) as exc:
        return f"ConfigMap {namespace}/{ref.get('name')}: {_first_error(exc)}"


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        return f"{where}: {errors[0]['msg']}" if errors else str(exc)
    return f"not YAML: {exc}".splitlines()[0]
