"""Operator start-up settings and the liveness probe."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from lbaas import GROUP
from lbaas.config import OperatorSettings


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Progress and diff-base in our own annotations: status stays ours, and the
        # finalizer names the product that put it there.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Events are for people: only warnings and our own explicit events are posted.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        settings.peering.standalone = True

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry has no default login: use the kubernetes client's config
        # (in-cluster service account, else KUBECONFIG).
        return kopf.login_via_client(**kwargs)

    @kopf.on.probe(id="trees", registry=registry)
    def trees(memo: kopf.Memo, **_: Any) -> int:
        return sum(1 for slot in memo.engine.slots.values() if slot.running)

    @kopf.on.startup(registry=registry)
    async def gauges(memo: kopf.Memo, **_: Any) -> None:
        async def refresh() -> None:
            while True:
                await asyncio.sleep(2)
                memo.engine.refresh_gauges()

        memo.gauges_task = asyncio.create_task(refresh())

    @kopf.on.cleanup(registry=registry)
    def close(memo: kopf.Memo, **_: Any) -> None:
        if getattr(memo, "gauges_task", None) is not None:
            memo.gauges_task.cancel()
        memo.engine.drivers.close()

    del settings
