"""A GatewayClass's status: ``Accepted`` and ``supportedFeatures`` (pure).

Only classes whose ``spec.controllerName`` is :data:`~lbaas.gateway.spec.CONTROLLER_NAME` are
this operator's; their status is written by it alone. ``Accepted`` is False
(``InvalidParameters``) when the parameters cannot be read (:mod:`lbaas.gateway.params`); the
supported features come from the Devices the class may use (:mod:`lbaas.gateway.features`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lbaas.gateway import features
from lbaas.gateway.params import Parameters, parameters
from lbaas.gateway.spec import CONTROLLER_NAME
from lbaas.gateway.world import World
from lbaas.status import Cond, condition_entries
from lbaas.views import meta_of, spec_of, status_of

ACCEPTED = "Accepted"
INVALID_PARAMETERS = "InvalidParameters"


def is_ours(gateway_class: Mapping[str, Any] | None) -> bool:
    return spec_of(gateway_class).get("controllerName") == CONTROLLER_NAME


def usable_devices(
    devices: Iterable[Mapping[str, Any]], params: Parameters
) -> list[Mapping[str, Any]]:
    """The Devices a class with ``params`` may place Gateways on."""
    selector = params.device_selector
    return [
        d
        for d in devices
        if selector is None or selector.matches(dict(meta_of(d).get("labels") or {}))
    ]


def class_status(
    gateway_class: Mapping[str, Any],
    world: World,
    *,
    namespace: str,
    devices: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The status this operator writes on one of its GatewayClasses."""
    params = parameters(gateway_class, world, namespace)
    generation = meta_of(gateway_class).get("generation")
    if isinstance(params, str):
        cond = Cond(ACCEPTED, False, INVALID_PARAMETERS, params)
        names: list[str] = []
    else:
        cond = Cond(ACCEPTED, True, ACCEPTED, "served by lbaas-operator")
        common = features.device_features(usable_devices(devices, params))
        names = features.supported(
            common,
            route_kinds=world.route_kinds,
            static_addresses=params.static_addresses == "Allowed",
        )
    previous = status_of(gateway_class).get("conditions") or []
    return {
        "conditions": condition_entries(previous, [cond], generation),
        "supportedFeatures": [{"name": n} for n in names],
    }
