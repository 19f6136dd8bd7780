"""The informer cache against late answers: a deleted object never comes back as a ghost."""

from __future__ import annotations

from typing import Any

from lbaas.kube.informer import Informer
from lbaas.kube.resources import VIPS


def vip(version: int, **meta: Any) -> dict[str, Any]:
    return {
        "kind": "VIP",
        "metadata": {"name": "web", "namespace": "ns", "resourceVersion": str(version), **meta},
    }


def informer() -> Informer:
    made = Informer(kube=None, resource=VIPS)  # type: ignore[arg-type]  # no I/O here
    seen: list[Any] = []
    made.handlers.append(seen.append)
    return made


def test_an_answer_older_than_the_deletion_is_not_cached() -> None:
    cache = informer()
    cache._apply("ADDED", vip(3, finalizers=["lbaas.dev/finalizer"]))
    cache._apply("DELETED", vip(5))
    # The agent's finalizer removal (version 4) answered after the watch reported the delete.
    cache.offer(vip(4, deletionTimestamp="2026-01-01T00:00:00Z"))
    assert cache.cache == {}
    cache.offer(vip(4))
    assert cache.cache == {}
    cache.offer(vip(6))  # a new object of the same name is not held back
    assert ("ns", "web") in cache.cache


def test_an_object_without_finalizers_being_deleted_is_gone_at_once() -> None:
    """Our write removed its last finalizer: the API server deletes it now. The cache says so
    at once (its address and capacity are free for others) rather than keep a ghost."""
    cache = informer()
    cache._apply("ADDED", vip(3, finalizers=["lbaas.dev/finalizer"]))
    cache.offer(vip(4, deletionTimestamp="2026-01-01T00:00:00Z", finalizers=[]))
    assert ("ns", "web") not in cache.cache
