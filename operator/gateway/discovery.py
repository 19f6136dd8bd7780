"""Whether the Gateway API is on: the setting, and which of its kinds the cluster serves.

The upstream CRDs are the cluster's (its admin installs a release of them); the operator
ships none. With ``gatewayApi: auto`` the feature is on when the API server serves
GatewayClasses and Gateways (``gateway.networking.k8s.io/v1``), and off otherwise, said in one
log line; route kinds the cluster does not serve (an older release of the CRDs) are left out,
also said once. ``true`` makes missing CRDs a startup error: whoever asked for the Gateway API
learns at once that it cannot be served, rather than from Gateways that never get a status.
Discovery runs once, at start: CRDs installed later need a restart of the controller.
"""

from __future__ import annotations

import logging

from lbaas.config import OperatorSettings
from lbaas.kube.client import Kube
from lbaas.kube.resources import GATEWAY_KINDS, GATEWAY_REQUIRED, Resource

log = logging.getLogger(__name__)


class GatewayAPIMissing(RuntimeError):
    """``gatewayApi: true`` and the cluster lacks the CRDs it needs."""


async def served(kube: Kube, settings: OperatorSettings) -> tuple[Resource, ...]:
    """The Gateway API resources to watch: none when off, else those the cluster serves."""
    if settings.gateway_api == "false":
        return ()
    found: dict[str, set[str] | None] = {}
    for resource in GATEWAY_KINDS:
        if resource.api_version not in found:
            found[resource.api_version] = await kube.discover(resource.api_version)
    kinds = tuple(r for r in GATEWAY_KINDS if r.plural in (found[r.api_version] or ()))
    return decide(settings, kinds)


def decide(settings: OperatorSettings, kinds: tuple[Resource, ...]) -> tuple[Resource, ...]:
    """What to watch given the served ``kinds``; raises or logs as the module docstring says."""
    missing = [r for r in GATEWAY_REQUIRED if r not in kinds]
    if missing:
        names = ", ".join(f"{r.plural}.{r.group}/{r.version}" for r in missing)
        if settings.gateway_api == "true":
            raise GatewayAPIMissing(
                f"LBAAS_GATEWAY_API=true, but the cluster does not serve {names}: install the"
                " Gateway API CRDs (standard channel), or set it to auto or false"
            )
        log.info("Gateway API off: the cluster does not serve %s (its CRDs)", names)
        return ()
    absent = [r for r in GATEWAY_KINDS if r not in kinds]
    if absent:
        log.info(
            "Gateway API on, without %s (not served: an older release of its CRDs)",
            ", ".join(r.kind for r in absent),
        )
    else:
        log.info("Gateway API on")
    return kinds
