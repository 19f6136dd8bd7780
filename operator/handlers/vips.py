"""VIP handlers: a daemon per VIP runs its tree loop; changes trigger it; deletion cleans up."""

from __future__ import annotations

from typing import Any

import kopf

from lbaas import GROUP, VERSION
from lbaas.config import OperatorSettings


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    @kopf.daemon(
        GROUP,
        VERSION,
        "vips",
        id="tree",
        cancellation_backoff=2.0,
        cancellation_timeout=10.0,
        registry=registry,
    )
    async def tree(
        namespace: str,
        name: str,
        uid: str,
        stopped: kopf.DaemonStopped,
        memo: kopf.Memo,
        **kwargs: Any,
    ) -> None:
        memo.engine.attach(kwargs)
        await memo.engine.run_tree((namespace, name), uid, stopped)

    @kopf.on.create(GROUP, VERSION, "vips", id="dispatch", registry=registry)
    @kopf.on.update(GROUP, VERSION, "vips", id="dispatch", registry=registry)
    @kopf.on.resume(GROUP, VERSION, "vips", id="dispatch", registry=registry)
    def dispatch(namespace: str, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
        memo.engine.attach(kwargs)
        memo.engine.trigger((namespace, name))

    @kopf.on.delete(GROUP, VERSION, "vips", id="remove", registry=registry)
    async def remove(
        namespace: str, name: str, body: kopf.Body, retry: int, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        memo.engine.attach(kwargs)
        await memo.engine.delete_vip((namespace, name), body, retry)

    @kopf.on.event(
        GROUP,
        VERSION,
        "vips",
        id="vanished",
        registry=registry,
        when=lambda type, **_: type == "DELETED",
    )
    async def vanished(
        event: kopf.RawEvent, namespace: str, name: str, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        # A VIP deleted before it got our finalizer never reaches the delete handler; its
        # children still have to learn that their parent is gone.
        if event.get("type") != "DELETED":
            return
        memo.engine.attach(kwargs)
        if memo.engine.vip((namespace, name)) is None:
            memo.engine.release((namespace, name))
            await memo.engine.orphan_children((namespace, name))

    del settings
