"""kopf's part: the hooks of the operator process (see ``lifecycle``).

``build_registry`` returns a fresh kopf registry holding exactly these hooks: kopf runs the
process (signals, logging, liveness, credentials) while the informers and roles of
:mod:`lbaas.runtime` handle the objects.
"""

from __future__ import annotations

import kopf

from lbaas.config import OperatorSettings
from lbaas.handlers import lifecycle
from lbaas.runtime import Role


def build_registry(settings: OperatorSettings, role: Role = "run") -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, settings, role)
    return registry
