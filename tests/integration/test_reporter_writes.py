"""The reporter's finalizer writes against the real API server: an object that is gone is
never brought back, and the answer says it is gone (False) instead of raising."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import Api, tree
from lbaas.kube.client import Kube
from lbaas.reporter import FINALIZER, Reporter


def _finalizer(obj: dict[str, Any], *, present: bool) -> bool:
    async def go() -> bool:
        kube = Kube(2)
        try:
            return await Reporter(kube, {}, event_namespace="default", instance="pytest").finalizer(
                obj, present=present
            )
        finally:
            kube.close()

    return asyncio.run(go())


def test_finalizer_added_and_removed(api: Api, namespace: str) -> None:
    vip = api.create(tree(namespace, "web", 0)[0])
    assert _finalizer(vip, present=True) is True
    written = api.get("VIP", "web", namespace)
    assert written is not None and FINALIZER in written["metadata"]["finalizers"]
    assert _finalizer(written, present=False) is True
    written = api.get("VIP", "web", namespace)
    assert written is not None and FINALIZER not in (written["metadata"].get("finalizers") or [])


def test_finalizer_on_a_gone_object_answers_gone_and_creates_nothing(
    api: Api, namespace: str
) -> None:
    """The apply is conditional on the uid; without a spec the API server refuses the
    would-be creation (422): either way the object is gone, not an error."""
    vip = api.create(tree(namespace, "gone", 0)[0])
    with_finalizer = dict(vip, metadata={**vip["metadata"], "finalizers": [FINALIZER]})
    api.delete("VIP", "gone", namespace)
    assert api.get("VIP", "gone", namespace) is None
    assert _finalizer(with_finalizer, present=False) is False
    assert _finalizer(vip, present=True) is False
    without_uid = dict(with_finalizer, metadata={**with_finalizer["metadata"], "uid": None})
    assert _finalizer(without_uid, present=False) is False  # 422: the schema wants a spec
    assert api.get("VIP", "gone", namespace) is None, "a deleted object came back"
