"""kopf handlers, kept thin: they feed the tree engine (lbaas.dispatch) and report status.

``build_registry`` wires every handler into a fresh kopf registry, so the set of handlers
is explicit and the timers take their intervals from the settings.
"""

from __future__ import annotations

import kopf

from lbaas.config import OperatorSettings
from lbaas.handlers import children, devices, indices, lifecycle, vips


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, settings)
    indices.register(registry)
    vips.register(registry, settings)
    children.register(registry, settings)
    devices.register(registry, settings)
    return registry
