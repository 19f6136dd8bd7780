"""One Gateway's reconcile: its VIP trees, its finalizer, its status.

1. Gone, being deleted, or no longer of a class of ours: the generated objects are deleted
   (VIPs first: their finalizer makes the agent take them off the device) and our finalizer
   leaves the Gateway once no generated VIP is left. The test bed, like a cluster whose
   garbage collector lags, does not cascade ownerReferences: this is what removes the trees.
2. Ours: our finalizer first (nothing is created that a deletion could miss); then, when the
   Gateway is accepted, the desired objects (:mod:`lbaas.gateway.translate`) are applied,
   only those that differ, and objects no longer desired deleted. A Gateway refused for its
   class's parameters or its addresses keeps the trees it has (a typo in a ConfigMap must not
   take every Gateway of the class off the air); one whose listeners are all invalid has
   nothing left to serve.
3. Its status (:mod:`lbaas.gateway.status`), through the reporter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from lbaas.gateway import classes, listeners, translate
from lbaas.gateway.attach import bind
from lbaas.gateway.params import Parameters, parameters
from lbaas.gateway.status import gateway_status
from lbaas.gateway.translate import INVALID_PARAMETERS, UNSUPPORTED_ADDRESS
from lbaas.gateway.world import CachedWorld
from lbaas.generated import owned, sharing
from lbaas.generated.objects import GeneratedObjects
from lbaas.kube.informer import Key, Obj
from lbaas.reporter import FINALIZER, Reporter
from lbaas.status import Cond
from lbaas.views import GATEWAY_LABEL, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

KEEP_TREES = {INVALID_PARAMETERS, UNSUPPORTED_ADDRESS}
"""Reasons a Gateway is refused for while its trees stay as they are."""


def policy_errors(generated: Iterable[Obj]) -> dict[str, list[str]]:
    """VIP name → its generated L7Policies in Error (a rule the device cannot serve)."""
    found: dict[str, list[str]] = {}
    for obj in generated:
        status = status_of(obj)
        if obj["kind"] == "L7Policy" and status.get("phase") == "Error":
            found.setdefault(str(spec_of(obj).get("vipRef")), []).append(
                f"L7Policy {meta_of(obj)['name']}: {status.get('reason')}: {status.get('message')}"
            )
    return found


class GatewayReconciler:
    def __init__(
        self,
        *,
        world: CachedWorld,
        reporter: Reporter,
        objects: GeneratedObjects,
        namespace: str,
        routes_of: Callable[[Key], Sequence[Obj]],
    ) -> None:
        self.world = world
        self.views = world.views
        self.reporter = reporter
        self.objects = objects
        self.namespace = namespace
        self.routes_of = routes_of

    def ours(self, gateway: Obj | None) -> bool:
        name = str(spec_of(gateway).get("gatewayClassName") or "")
        return gateway is not None and classes.is_ours(self.world.get("GatewayClass", "", name))

    def generated(self, key: Key) -> list[Obj]:
        """The objects generated for the Gateway: labelled for it and owned by a Gateway of
        that name (a hand-made object that only carries the label is never deleted)."""
        found = self.views.generated(key[0], owned.label_value(key[1]), GATEWAY_LABEL)
        return [o for o in found if self._generated_for(o, key[1])]

    @staticmethod
    def _generated_for(obj: Obj, name: str) -> bool:
        return owned.generated_for(obj, kind="Gateway", name=name, label=GATEWAY_LABEL)

    async def reconcile(self, key: Key) -> bool:
        """False when a write lost a race (the Gateway changed): reconcile again."""
        gateway = self.world.get("Gateway", *key)
        if gateway is None or is_deleting(gateway) or not self.ours(gateway):
            return await self._remove(key, gateway)
        if FINALIZER not in (meta_of(gateway).get("finalizers") or ()):
            if not await self.reporter.finalizer(gateway, present=True):
                return True  # gone meanwhile: its deletion queues it again
            gateway = self.world.get("Gateway", *key) or gateway
        name = str(spec_of(gateway).get("gatewayClassName"))
        gateway_class = self.world.get("GatewayClass", "", name) or {}
        params = parameters(gateway_class, self.world, self.namespace)
        verdicts = listeners.verdicts(gateway, self.world.route_kinds, self.world)
        address = (
            translate.requested_address(gateway, params) if isinstance(params, Parameters) else None
        )
        accepted = translate.accepted(gateway, params, verdicts, address)
        generated = self.generated(key)
        vips = [o for o in generated if o["kind"] == "VIP"]
        bindings = bind(gateway, verdicts, self.routes_of(key), self.world)
        problems: list[str] = []
        if accepted.ok and isinstance(params, Parameters) and not isinstance(address, Cond):
            want = translate.desired(
                gateway,
                verdicts=verdicts,
                bindings=bindings,
                world=self.world,
                params=params,
                address=address,
                vips=vips,
            )
            outcome = await self.objects.sync(
                key[0], want.objects, generated, ours=lambda o: self._generated_for(o, key[1])
            )
            if outcome.conflicts:
                problems.append(
                    f"not generated, another object has the name: {', '.join(outcome.conflicts)}"
                )
            problems += [f"refused by the API server: {r}" for r in outcome.refused]
        elif accepted.reason not in KEEP_TREES:
            await self.objects.delete(o for o in generated if not is_deleting(o))
        groups = translate.vip_groups(verdicts)
        now = self.generated(key)
        current = {str(meta_of(o)["name"]): o for o in now if o["kind"] == "VIP"}
        doc = gateway_status(
            gateway,
            accepted=accepted,
            verdicts=verdicts,
            vips=current,
            attached=bindings.attached,
            placement=sharing.placement_of(current.values(), next(iter(groups), "")),
            problems=problems,
            policy_errors=policy_errors(now),
        )
        latest = self.world.get("Gateway", *key) or gateway
        return await self.reporter.status(latest, doc)

    async def _remove(self, key: Key, gateway: Obj | None) -> bool:
        """Take the Gateway's trees off the devices and out of the cluster, then let it go."""
        generated = self.generated(key)
        await self.objects.delete(o for o in generated if not is_deleting(o))
        if gateway is None:
            return True
        vips = [o for o in generated if o["kind"] == "VIP"]
        if any(self.views.get("VIP", key[0], meta_of(v)["name"]) for v in vips):
            return True  # the agent is removing them; their deletion queues the Gateway again
        if FINALIZER in (meta_of(gateway).get("finalizers") or ()):
            latest = self.world.get("Gateway", *key) or gateway
            await self.reporter.finalizer(latest, present=False)
            log.info("Gateway %s/%s: load balancers removed", *key)
        return True
