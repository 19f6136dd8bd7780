"""What a Device's status should say, from its agent's view (pure), and its handle.

``device_status`` turns the worker's state (the probe's phase and message) into the agent's
part of the Device status: a Device being deleted while VIPs are bound says ``InUse`` (its
finalizer holds it), ``notReadySince`` starts the failover clock and is removed once the
device is Ready, ``lastProbeTime`` moves only when the state changes (a write per probe would
be churn). ``build_handle`` makes the ``DeviceHandle`` a driver gets: credentials read from
the Secret, errors about them shown without the API's text (it may echo request headers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.drivers.capabilities import summary
from lbaas.drivers.contract import DeviceHandle, Driver
from lbaas.drivers.errors import DriverError
from lbaas.drivers.registry import DriverRegistry
from lbaas.kube.client import Kube
from lbaas.status import READY, Cond, desired_status, now
from lbaas.views import is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]


def device_status(
    device: Mapping[str, Any],
    *,
    phase: str,
    reason: str,
    message: str,
    agent: str,
    bound: Sequence[VipKey],
    features: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The agent's part of ``device``'s status (``features``: what its driver supports)."""
    status = status_of(device)
    ready = phase == DevicePhase.READY
    if is_deleting(device) and bound:
        shown = ", ".join(f"{ns}/{vip}" for ns, vip in bound[:5])
        more = f" and {len(bound) - 5} more" if len(bound) > 5 else ""
        phase, reason = DevicePhase.ERROR, "InUse"
        message = (
            f"deletion waits: {len(bound)} VIP(s) still on this device ({shown}{more});"
            " delete them or move them first"
        )
    since = status.get("notReadySince")
    if ready:
        since = None  # removes it
    elif not since or status.get("phase") == DevicePhase.READY:
        since = now()
    desired = desired_status(
        status,
        phase=phase,
        reason=reason,
        message=message,
        generation=meta_of(device).get("generation"),
        conditions=[Cond(READY, ready, reason, message)],
        extra={
            "agent": agent,
            "notReadySince": since,
            **(
                {"features": sorted(features), "featureSummary": summary(features)}
                if features is not None
                else {}
            ),
        },
    )
    if status.get("phase") != phase or status.get("message") != message:
        desired["lastProbeTime"] = now()
    elif status.get("lastProbeTime"):
        desired["lastProbeTime"] = status["lastProbeTime"]
    return desired


async def open_device(
    device: Mapping[str, Any], drivers: DriverRegistry, kube: Kube, owner: str, fence: int
) -> tuple[Driver, DeviceSpec, DeviceHandle]:
    """The driver, spec and handle of a Device: its spec parsed, its driver loaded, the
    driver's config checked (in a thread: drivers are synchronous), its credentials read.

    :raises DriverError: from the registry, ``validate_config`` or :func:`build_handle`.
    :raises ValueError: the spec does not parse (the schema should have refused it).
    """
    spec = DeviceSpec.model_validate(spec_of(device))
    driver = drivers.get(spec.driver)
    await asyncio.to_thread(driver.validate_config, spec.config)
    labels = meta_of(device).get("labels") or {}
    name = str(meta_of(device)["name"])
    return driver, spec, await build_handle(name, spec, labels, kube, owner, fence)


async def build_handle(
    name: str, spec: DeviceSpec, labels: Mapping[str, str], kube: Kube, owner: str, fence: int
) -> DeviceHandle:
    """The handle of a Device, its credentials read from their Secret.

    :raises DriverError: ``CredentialsUnavailable`` naming the Secret only.
    """
    credentials: Mapping[str, str] = {}
    ref = spec.credentials_secret_ref
    if ref is not None:
        try:
            credentials = await kube.read_secret(ref.namespace, ref.name)
        except (ApiException, OSError, ValueError) as exc:
            log.warning("device %s: Secret %s/%s: %s", name, ref.namespace, ref.name, exc)
            raise DriverError(
                f"credentials Secret {ref.namespace}/{ref.name} cannot be read",
                reason="CredentialsUnavailable",
            ) from None
    return DeviceHandle(
        name=name,
        driver=spec.driver,
        config=spec.config,
        labels=dict(labels),
        credentials=credentials,
        owner=owner,
        fence=fence,
    )
