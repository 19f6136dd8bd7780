"""kopf's API session: kopf's own credentials, with a connection limit."""

from __future__ import annotations

import asyncio

import kopf

from lbaas.handlers.lifecycle import bounded_session


def test_session_keeps_kopf_credentials_and_has_the_limit() -> None:
    info = kopf.ConnectionInfo(
        server="https://127.0.0.1:6443",
        token="t0ken",
        insecure=True,
        default_namespace="team-a",
    )

    async def build() -> tuple[int, str, str | None, str]:
        context = bounded_session(info, 23)
        try:
            session = context.aiohttp_session
            return (
                session.connector.limit if session.connector else -1,
                session.headers["Authorization"],
                context.default_namespace,
                context.server,
            )
        finally:
            await context.aiohttp_session.close()

    limit, auth, namespace, server = asyncio.run(build())
    assert limit == 23
    assert auth == "Bearer t0ken"
    assert namespace == "team-a"
    assert server == "https://127.0.0.1:6443"
