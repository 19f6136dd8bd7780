"""Device handlers: validate the driver config, probe periodically, refuse deletion in use."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from lbaas import GROUP, VERSION, metrics
from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.config import OperatorSettings
from lbaas.dispatch import Engine
from lbaas.drivers.base import DriverError, ProbeResult
from lbaas.status import READY, Cond, desired_status, now


async def _probe(engine: Engine, name: str, body: kopf.Body) -> dict[str, Any]:
    """The Device status the driver's answer calls for (validation first, then the probe)."""
    status = dict(body.get("status") or {})
    count = len(engine.bound_vips(name))
    generation = body.metadata.get("generation")
    try:
        spec = DeviceSpec.model_validate(dict(body.spec))
        capacity = spec.capacity.max_vips
        driver = engine.drivers.get(spec.driver)
        await asyncio.to_thread(driver.validate_config, spec.config)
        handle = (await engine._driver_and_handle(engine.device(name) or _snap(body)))[1]
        result: ProbeResult = await engine.runner.call(
            spec.driver, name, "probe", lambda: driver.probe(handle)
        )
        phase = DevicePhase.READY if result.ready else DevicePhase.NOT_READY
        reason = "Ready" if result.ready else "ProbeFailed"
        message = result.message or ("ready" if result.ready else "not ready")
    except DriverError as exc:
        capacity = int((body.spec.get("capacity") or {}).get("maxVIPs", 100))
        phase = DevicePhase.NOT_READY if exc.retryable else DevicePhase.ERROR
        reason, message = exc.reason, exc.user_message
    metrics.DEVICE_VIPS.labels(name).set(count)
    metrics.DEVICE_CAPACITY.labels(name).set(capacity)
    return desired_status(
        status,
        phase=str(phase),
        reason=reason,
        message=message,
        generation=generation,
        conditions=[Cond(READY, phase == DevicePhase.READY, reason, message)],
        extra={"vipCount": count, "freeCapacity": max(0, capacity - count), "lastProbeTime": now()},
    )


def _snap(body: kopf.Body) -> dict[str, Any]:
    from lbaas.tree import snapshot

    return snapshot(body)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    @kopf.on.create(GROUP, VERSION, "devices", id="validate", registry=registry)
    @kopf.on.update(GROUP, VERSION, "devices", id="validate", registry=registry)
    @kopf.on.resume(GROUP, VERSION, "devices", id="validate", registry=registry)
    async def validate(
        name: str, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        engine: Engine = memo.engine
        engine.attach(kwargs)
        status = await _probe(engine, name, body)
        old = body.get("status") or {}
        if status["phase"] == DevicePhase.ERROR and (old.get("phase"), old.get("message")) != (
            status["phase"],
            status["message"],
        ):
            kopf.warn(body, reason=status["reason"], message=status["message"])
        patch.status.update(status)  # VIPs learn of it from the inventory handler below

    @kopf.on.event(GROUP, VERSION, "devices", id="inventory", registry=registry)
    def inventory(
        event: kopf.RawEvent, name: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        # kopf updates the indices before event handlers run: VIPs triggered here see this
        # Device as it is now, including the status the handlers above patched.
        memo.engine.attach(kwargs)
        memo.engine.device_indexed(name, None if event.get("type") == "DELETED" else body)

    @kopf.timer(
        GROUP,
        VERSION,
        "devices",
        id="probe",
        interval=settings.probe_interval,
        initial_delay=settings.probe_interval,
        registry=registry,
    )
    async def probe(
        name: str, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        engine: Engine = memo.engine
        engine.attach(kwargs)
        status = await _probe(engine, name, body)
        patch.status.update(status)  # a new phase reaches VIPs through the inventory handler

    @kopf.on.delete(GROUP, VERSION, "devices", id="in-use", registry=registry)
    async def in_use(name: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        engine: Engine = memo.engine
        engine.attach(kwargs)
        bound = sorted(f"{ns}/{vip}" for ns, vip in engine.bound_vips(name))
        if not bound:
            return
        shown = ", ".join(bound[:5]) + (f" and {len(bound) - 5} more" if len(bound) > 5 else "")
        message = (
            f"deletion waits: {len(bound)} VIP(s) still on this device ({shown});"
            f" delete them or move them (set deviceRef and recreate) first"
        )
        current = dict(body.get("status") or {})
        status = desired_status(
            current,
            phase=DevicePhase.ERROR,
            reason="InUse",
            message=message,
            generation=None,
            conditions=[Cond(READY, False, "InUse", message)],
        )
        await asyncio.to_thread(engine.kube.patch_status, "Device", None, name, status)
        if current.get("reason") != "InUse":
            kopf.warn(body, reason="InUse", message=message)
        raise kopf.TemporaryError(message, delay=5)
