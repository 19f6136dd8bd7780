"""Operator start-up settings and the liveness probe."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
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
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # An explicit registry has no default login: use the kubernetes client's config
        # (in-cluster service account, else KUBECONFIG).
        info = await asyncio.to_thread(kopf.login_via_client, **kwargs)
        if info is None:
            return None
        return bounded_session(info, connection_limit(settings))

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


# Resources kopf watches: VIPs, Pools, Members and HealthMonitors once per namespace (or once
# cluster-wide), Devices and Namespaces once each.
NAMESPACED_RESOURCES = 4
CLUSTER_RESOURCES = 2


def connection_limit(settings: OperatorSettings) -> int:
    """API connections kopf may hold: one per watch stream, plus ``api_connections``."""
    streams = NAMESPACED_RESOURCES * max(1, len(settings.namespaces)) + CLUSTER_RESOURCES
    return streams + settings.api_connections


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """kopf's own session, but with a connection limit.

    kopf's default connector is unlimited: when thousands of objects change at once (a cold
    start), it opens a TLS connection per concurrent request, and every handshake costs
    hundreds of kilobytes (measured: 0.5 GB of RSS for 1,200 objects). Requests beyond the
    limit wait for a free connection instead.
    """
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )
