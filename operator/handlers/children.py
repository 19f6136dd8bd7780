"""Pool, Member and HealthMonitor handlers: find the VIP they belong to and trigger its loop.

A child whose parent does not exist yet shows Pending ``WaitingForParent`` and checks again
every few seconds; after ``parent_timeout`` it turns Error ``ParentNotFound`` (and still joins
its tree by itself the moment the parent appears: the VIP's loop picks up every child it
finds in the indices).
"""

from __future__ import annotations

from typing import Any

import kopf

from lbaas import GROUP, VERSION
from lbaas.config import OperatorSettings
from lbaas.dispatch import Engine, age_seconds
from lbaas.status import PROGRAMMED, READY, Cond, desired_status, needs_write

KINDS = {"pools": "Pool", "members": "Member", "healthmonitors": "HealthMonitor"}
RECHECK = 3.0


async def _write(
    engine: Engine, kind: str, body: kopf.Body, phase: str, reason: str, message: str
) -> None:
    import asyncio

    current = dict(body.get("status") or {})
    desired = desired_status(
        current,
        phase=phase,
        reason=reason,
        message=message,
        generation=None,
        conditions=[Cond(PROGRAMMED, False, reason, message), Cond(READY, False, reason, message)],
    )
    if needs_write(current, desired):
        await asyncio.to_thread(
            engine.kube.patch_status, kind, body.metadata.namespace, body.metadata.name, desired
        )


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    for plural, kind in KINDS.items():
        _register_kind(registry, settings, plural, kind)


def _register_kind(
    registry: kopf.OperatorRegistry, settings: OperatorSettings, plural: str, kind: str
) -> None:
    @kopf.on.create(GROUP, VERSION, plural, id="dispatch", registry=registry)
    @kopf.on.update(GROUP, VERSION, plural, id="dispatch", registry=registry)
    @kopf.on.resume(GROUP, VERSION, plural, id="dispatch", registry=registry)
    async def dispatch(
        namespace: str, spec: kopf.Spec, body: kopf.Body, old: Any, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        engine: Engine = memo.engine
        engine.attach(kwargs)
        if old and old.get("spec"):
            # Moved to another parent: the old tree must drop this object too.
            previous = engine.vip_key_of(kind, namespace, old["spec"])
            if previous is not None:
                engine.trigger_all([previous])
        key = engine.vip_key_of(kind, namespace, spec)
        vip = engine.vip(key) if key else None
        if vip is not None and not vip["metadata"].get("deletionTimestamp"):
            engine.trigger(key)
            return
        parent = engine.parent_of(kind, namespace, spec)
        if age_seconds(body.metadata.creation_timestamp) > settings.parent_timeout:
            message = (
                f"{parent} not found after {settings.parent_timeout:.0f}s; create it or"
                f" fix the reference (this object joins by itself once it exists)"
            )
            if (body.get("status") or {}).get("reason") != "ParentNotFound":
                kopf.warn(body, reason="ParentNotFound", message=message)
            await _write(engine, kind, body, "Error", "ParentNotFound", message)
            return
        await _write(
            engine, kind, body, "Pending", "WaitingForParent", f"waiting for {parent} to exist"
        )
        raise kopf.TemporaryError(f"waiting for {parent}", delay=RECHECK)

    if kind == "Pool":

        @kopf.on.event(
            GROUP,
            VERSION,
            plural,
            id="vanished",
            registry=registry,
            when=lambda type, **_: type == "DELETED",
        )
        async def vanished(
            event: kopf.RawEvent, namespace: str, name: str, memo: kopf.Memo, **kwargs: Any
        ) -> None:
            # Gone (with or without our finalizer): its children must say they wait.
            if event.get("type") == "DELETED":
                memo.engine.attach(kwargs)
                await memo.engine.orphan_pool_children(namespace, name)

    @kopf.on.delete(GROUP, VERSION, plural, id="remove", registry=registry)
    async def remove(
        namespace: str, spec: kopf.Spec, body: kopf.Body, retry: int, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        engine: Engine = memo.engine
        engine.attach(kwargs)
        key = engine.vip_key_of(kind, namespace, spec)
        if key is None:
            return  # never reached a device
        try:
            await engine.wait_applied(key, settings.driver_timeout * 2 + 10)
        except Exception as exc:
            message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
            if retry + 1 < settings.delete_attempts:
                raise kopf.TemporaryError(
                    f"removing from the device failed: {message}",
                    delay=min(settings.retry_backoff_max, 2.0**retry),
                ) from exc
            kopf.warn(
                body,
                reason="DeleteAbandoned",
                message=f"released after {retry + 1} failed attempts; the device may keep"
                f" stale config: {message}",
            )
