"""kopf's hooks into the process: settings, credentials, start, stop, liveness."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import kopf

from lbaas.config import OperatorSettings
from lbaas.gateway.discovery import GatewayAPIMissing
from lbaas.runtime import Process, Role

log = logging.getLogger(__name__)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, role: Role) -> None:
    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.enabled = False  # Events are posted by lbaas.reporter
        settings.peering.standalone = True
        # kopf serves no resource of ours: no CRD watch (nor RBAC for one), discovery only.
        settings.scanning.disabled = True
        settings.networking.request_timeout = 60
        try:
            memo.process = await Process.build(role, operator_settings)
        except GatewayAPIMissing as exc:
            raise kopf.PermanentError(str(exc)) from exc
        # Syncing the caches takes a while at scale: kopf's startup must not wait for it.
        memo.starting = asyncio.create_task(memo.process.start(), name="start")

    operator_settings = settings

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # An explicit registry has no default login: use the kubernetes client's config
        # (in-cluster service account, else KUBECONFIG). kopf itself watches nothing of
        # ours, so a small connection pool is plenty.
        info = await asyncio.to_thread(kopf.login_via_client, **kwargs)
        if info is None:
            return None
        return bounded_session(info, 4)

    @kopf.on.probe(id="synced", registry=registry)
    def synced(memo: kopf.Memo, **_: Any) -> bool:
        process: Process | None = getattr(memo, "process", None)
        return bool(process and process.views.synced)

    @kopf.on.probe(id="trees", registry=registry)
    def trees(memo: kopf.Memo, **_: Any) -> int:
        process: Process | None = getattr(memo, "process", None)
        return len(process.agent.loops) if process and process.agent else 0

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        starting: asyncio.Task[None] | None = getattr(memo, "starting", None)
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        process: Process | None = getattr(memo, "process", None)
        if process is not None:
            await process.stop()


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """kopf's own session, with a connection limit (kopf's default connector has none)."""
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
